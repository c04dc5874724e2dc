r"""RErr under random L-infinity weight noise relative to each tensor's range (Fig. 9).

Examples:
  tfbet-weight-noise --run_dir=runs/mnist_clipping --magnitudes=1,2.5,5,10 --num_samples=10 \
      --bit_errors=runs/eval/clipping.json --plot=runs/eval/noise.png --output=runs/eval/noise.json
Magnitudes are in percent of each tensor's range; see tfbet/cli/weight_noise.py.
"""
import math
import os

from absl import app
from absl import flags

from tfbet import checks
from tfbet import evaluation
from tfbet import files
from tfbet import lazy_modules
from tfbet import plots
from tfbet.cli import launch
from tfbet.cli import model_flags

noise_lib = lazy_modules.module("tfbet.weight_noise")  # TensorFlow: not for --help

DEFAULT_MAGNITUDES = ("0.5", "1", "2.5", "5", "10")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/weight_noise on ``flag_values``."""
  model_flags.define_flags(flag_values, result_flags=False)
  flags.DEFINE_string(
      "output", None,
      "Optional path of a JSON file with the error counts per noise seed and magnitude "
      "(format tfbet-weight-noise/1).",
      flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional path of a PNG: RErr against the noise magnitude (and against p with --bit_errors).",
      flag_values=flag_values)
  flags.DEFINE_list(
      "magnitudes", list(DEFAULT_MAGNITUDES),
      "Comma-separated relative L-infinity magnitudes in PERCENT of each tensor's range "
      "(--magnitudes=1 adds noise uniform in [-1 %, 1 %] of the range). Each >= 0; at most "
      f"{checks.MAX_CONDITIONS} magnitudes.",
      flag_values=flag_values)
  # A noise draw costs a pass over the test set, like a chip: the same limit.
  flags.DEFINE_integer("num_samples", 10, "Noise draws per magnitude (seeds first_seed + i), "
                       f"at most {checks.MAX_CHIPS}.", lower_bound=1,
                       upper_bound=checks.MAX_CHIPS, flag_values=flag_values)
  flags.DEFINE_integer("first_seed", 0, "Seed of the first noise draw.", lower_bound=0,
                       flag_values=flag_values)
  flags.DEFINE_string(
      "bit_errors", None,
      "Optional bin/eval result (JSON) of the same model on the same test set: its RErr over "
      "bit error rates is plotted next to the noise.", flag_values=flag_values)


def parse_magnitudes(values):
  """Noise magnitudes in percent of each tensor's range -> fractions, validated and distinct."""
  return checks.percentages(values, "magnitudes", 0, math.inf)


def table(results):
  lines = [f"model {results.model.get('name')} ({results.model.get('num_weights')} weights), "
           f"n = {results.n}, clean Err {100 * results.clean_error:.2f} %",
           f"{'eps %':>7} {'samples':>7} {'RErr %':>7} {'std %':>6} {'min %':>6} {'max %':>6}"]
  for row in results.summary():
    lines.append(f"{100 * row.magnitude:7.3g} {row.num_samples:7d} {100 * row.mean:7.2f} "
                 f"{100 * row.std:6.2f} {100 * row.min:6.2f} {100 * row.max:6.2f}")
  lines.append("eps: L-infinity bound of the noise relative to each tensor's quantization range")
  return "\n".join(lines)


def check_same_model(evaluator, bit_errors):
  """ValueError unless the bin/eval result is of ``evaluator``'s model and test set."""
  if bit_errors.model.get("digest") != evaluator.digest:
    raise ValueError("--bit_errors holds another model (digest differs)")
  difference = evaluation.data_difference(bit_errors, evaluator, "--bit_errors", "this test set")
  if difference:
    raise ValueError(f"--bit_errors was evaluated on another test set: {difference}")
  if bit_errors.condition_kind != "rate":
    raise ValueError("--bit_errors must be a bin/eval result over bit error rates")


def plot(results, path, bit_errors=None):
  """PNG: RErr against the noise magnitude (and against p, if ``bit_errors``), log x axes."""
  panels = 1 if bit_errors is None else 2
  figure = plots.new_figure(figsize=(5.2 * panels, 4.2))
  axes = figure.subplots(1, panels, squeeze=False, sharey=True)[0]
  curves = [(axes[0], [(r.magnitude, r.mean, r.std) for r in results.summary()],
             "L\u221e noise, % of each tensor's range")]
  if bit_errors is not None:
    curves.append((axes[1], [(r.condition, r.mean, r.std) for r in bit_errors.summary()],
                   "bit error rate p in %"))
  for ax, points, xlabel in curves:
    points = [p for p in points if p[0] > 0]
    x = [100 * p[0] for p in points]
    mean = [100 * p[1] for p in points]
    std = [100 * p[2] for p in points]
    ax.plot(x, mean, "o-", color="C0")
    ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    color="C0", alpha=0.25, linewidth=0)
    ax.axhline(100 * results.clean_error, color="black", linestyle=":", label="clean Err")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xticks([], minor=True)
    ax.set_xlabel(xlabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  axes[0].set_ylabel("RErr in % (mean \u00b1 std)")
  figure.suptitle(f"{results.model.get('name')}: weight noise"
                  + (" vs. bit errors" if bit_errors is not None else ""), fontsize="medium")
  plots.add_footer(figure, [plots.measured_with(results.model)])
  files.save_figure(figure, path)
  return path


def main(argv):
  """RErr under random L-infinity weight noise (Fig. 9).

  Each quantized tensor gets uniform noise of at most ``--magnitudes`` percent of its own range
  (``tfbet.weight_noise``), ``--num_samples`` draws per magnitude. With ``--bit_errors`` (a
  bin/eval result of the same model on the same test set) the plot shows RErr under bit errors
  next to it.
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    magnitudes = parse_magnitudes(flag_values.magnitudes)
    bit_errors = (evaluation.Results.from_json(flag_values.bit_errors)
                  if flag_values.bit_errors else None)
    model, data, _ = model_flags.load(flag_values)
  except (FileNotFoundError, TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  evaluator = evaluation.Evaluator(model, data.test_dataset())
  if bit_errors is not None:
    try:
      check_same_model(evaluator, bit_errors)
    except ValueError as error:
      raise app.UsageError(str(error)) from error
  seeds = [flag_values.first_seed + i for i in range(flag_values.num_samples)]
  results = noise_lib.weight_noise(evaluator, magnitudes, seeds,
                                   progress=lambda s: print(s, flush=True))
  print(table(results), flush=True)
  if flag_values.output:
    os.makedirs(os.path.dirname(os.path.abspath(flag_values.output)), exist_ok=True)
    print(f"wrote {results.to_json(flag_values.output)}")
  if flag_values.plot:
    print(f"wrote {plot(results, flag_values.plot, bit_errors)}")


if __name__ == "__main__":  # python -m tfbet.cli.weight_noise
  launch.start("weight_noise")
