r"""RErr when only one layer's (or tensor's) memory is faulty: which parts need protection.

Examples:
  tfbet-sensitivity --run_dir=runs/mnist_rquant --rate=1 --num_chips=10 \
      --plot=runs/eval/sensitivity.png --output=runs/eval/sensitivity.json
  tfbet-sensitivity --run_dir=runs/r --chip_files=chip2.npz --voltage=0.83 --by=tensor
See tfbet/cli/sensitivity.py.
"""
import os

from absl import app
from absl import flags

from tfbet import checks
from tfbet import chip_models
from tfbet import evaluation
from tfbet import files
from tfbet import plots
from tfbet import sensitivity as sensitivity_lib
from tfbet.cli import chip_flags
from tfbet.cli import launch
from tfbet.cli import model_flags


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/sensitivity on ``flag_values``."""
  model_flags.define_flags(flag_values, result_flags=False)
  flags.DEFINE_string(
      "output", None,
      "Optional path of a JSON file with the counts of every group and of the whole memory "
      "(tfbet.sensitivity.Sensitivity.to_dict: one tfbet.evaluation result per group).",
      flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional path of a PNG: bars of RErr per group (std over chips), clean Err and the "
      "whole-memory RErr.",
      flag_values=flag_values)
  flags.DEFINE_float(
      "rate", 1.0, "Bit error rate p in PERCENT of the random chips (ignored with "
      "--chip_files); in (0, 100).", flag_values=flag_values)
  flags.DEFINE_integer(
      "num_chips", 10, "Number of random chips, seeds first_chip_seed + 0 .. num_chips - 1; "
      f"at most {checks.MAX_CHIPS}.", lower_bound=1, upper_bound=checks.MAX_CHIPS,
      flag_values=flag_values)
  flags.DEFINE_integer(
      "first_chip_seed", chip_models.FIRST_EVALUATION_SEED,
      "Seed of the first random chip (default: the first seed of bin/eval, so the chips are "
      "bin/eval's).", lower_bound=0, flag_values=flag_values)
  flags.DEFINE_list(
      "chip_files", [],
      "Comma-separated profiled chip files (.npz, e.g. from bin/simulate_chips); with them the "
      "condition is --voltage instead of --rate.", flag_values=flag_values)
  flags.DEFINE_float(
      "voltage", None, "With --chip_files: the normalized voltage, profiled in every file.",
      flag_values=flag_values)
  flags.DEFINE_integer(
      "seed", 0, "With --chip_files: seed (>= 0) of the transient faults.", lower_bound=0,
      flag_values=flag_values)
  flags.DEFINE_list(
      "offsets", ["0"],
      "Comma-separated bit offsets of the weights on the chips (multiples of 8); RErr of a chip "
      f"is the mean over them. At most {checks.MAX_OFFSETS} offsets.", flag_values=flag_values)
  flags.DEFINE_enum(
      "by", "layer", list(sensitivity_lib.GROUPINGS),
      "layer: all quantized tensors of a layer (kernel, bias, ...) are faulty together; "
      "tensor: one tensor at a time.", flag_values=flag_values)


def table(report):
  """Text table of a ``Sensitivity``: one row per group, then the whole memory."""
  full = report.full
  num_weights = full.model.get("num_weights")
  unit = (f"p = {100 * report.condition:g} %" if full.condition_kind == "rate"
          else f"V/Vmin = {report.condition:g}")
  width = max(12, *(len(g.name) for g in report.groups))
  lines = [f"model {full.model.get('name')} ({num_weights} weights), n = {full.n}, clean Err "
           f"{100 * full.clean_error:.2f} %, {unit}, {len(full.chip_names)} chips, faulty memory "
           f"by {report.by}",
           f"{'faulty':>{width}} {'tensors':>7} {'weights':>8} {'share %':>7} {'RErr %':>7} "
           f"{'std %':>6} {'max %':>6}"]

  def row(name, tensors, weights, results):
    (summary,) = results.summary()
    return (f"{name:>{width}} {tensors:>7} {weights:>8} {100 * weights / num_weights:7.2f} "
            f"{100 * summary.mean:7.2f} {100 * summary.std:6.2f} {100 * summary.max:6.2f}")

  for group in report.groups:
    lines.append(row(group.name, len(group.tensors), group.num_weights,
                     report.results[group.name]))
  lines.append(row("all", sum(len(g.tensors) for g in report.groups), num_weights, full))
  lines.append("RErr: mean, std and max over chips with only that memory faulty (the same "
               "chips' errors, cut to it)")
  return "\n".join(lines)


def plot(report, path):
  """PNG: horizontal bars of RErr per group (std as error bars), clean Err and whole memory.

  The bars start at the clean Err, and so does the axis: what a group's faults add is the
  bar's length (all groups often lie within a point or two of each other, far from 0).
  """
  names = [g.name for g in report.groups]
  summaries = [report.results[name].summary()[0] for name in names]
  shares = [g.num_weights / report.full.model["num_weights"] for g in report.groups]
  clean = 100 * report.full.clean_error
  whole = 100 * report.full.summary()[0].mean
  figure = plots.new_figure(figsize=(7.2, 1.9 + 0.32 * len(names)))
  ax = figure.subplots()
  positions = list(range(len(names)))[::-1]
  means = [100 * s.mean for s in summaries]
  stds = [100 * s.std for s in summaries]
  ax.barh(positions, [m - clean for m in means], left=clean, xerr=stds, color="C0", capsize=2)
  ax.set_yticks(positions, [f"{n} ({100 * s:.2g} % of weights)" for n, s in zip(names, shares)],
                fontsize="small")
  ax.axvline(clean, color="black", linestyle=":", label=f"clean Err ({clean:.2f} %)")
  ax.axvline(whole, color="C3", linestyle="--", label=f"whole memory faulty ({whole:.2f} %)")
  low = min([clean] + [m - s for m, s in zip(means, stds)])
  high = max([whole] + [m + s for m, s in zip(means, stds)])
  ax.set_xlim(low, high + 0.05 * max(high - low, 0.1))
  unit = (f"p = {100 * report.condition:g} %" if report.full.condition_kind == "rate"
          else f"V/Vmin = {report.condition:g}")
  ax.set_xlabel(f"RErr in % with only this {report.by}'s memory faulty (bars start at the "
                "clean Err)")
  ax.set_title(f"{report.full.model.get('name')}: {unit}, mean \u00b1 std over "
               f"{len(report.full.chip_names)} chips", fontsize="medium")
  figure.legend(fontsize="small", loc="outside upper right", ncol=2)  # never over a bar
  ax.grid(True, axis="x", alpha=0.3)
  plots.add_footer(figure, [plots.measured_with(report.full.model)])
  files.save_figure(figure, path)
  return path


def _chips_and_condition(flag_values):
  if flag_values.chip_files:
    if flag_values.voltage is None:
      raise ValueError("with --chip_files give --voltage (a profiled normalized voltage)")
    return (chip_flags.load_chips(flag_values.chip_files, flag_values.seed,
                                  [flag_values.voltage]), flag_values.voltage)
  if flag_values.voltage is not None:
    raise ValueError("--voltage needs --chip_files (random chips take --rate)")
  if not 0 < flag_values.rate < 100:
    raise ValueError(f"--rate is in percent and must be in (0, 100), got {flag_values.rate}")
  seeds = [flag_values.first_chip_seed + i for i in range(flag_values.num_chips)]
  return chip_flags.make_chips("random", seeds), flag_values.rate / 100


def main(argv):
  """RErr with only one layer's (or tensor's) memory faulty.

  Random chips (``--rate`` in percent, ``--num_chips`` from ``--first_chip_seed``, the seeds of
  bin/eval) or profiled chips (``--chip_files`` at ``--voltage``). For every group the chip's
  whole-memory masks are computed and cut to the group's bytes (``tfbet.sensitivity``), so the
  groups meet the same errors as in bin/eval. Prints per group its size, its share of the
  weights and RErr (mean +- std over chips), next to the clean Err and the whole-memory RErr;
  ``--plot`` draws the same as bars.
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  try:
    offsets = [int(o) for o in checks.bounded_list(flag_values.offsets, "--offsets",
                                                   checks.MAX_OFFSETS)]
    if any(o < 0 or o % 8 for o in offsets):
      raise ValueError(f"--offsets must be non-negative multiples of 8, got {offsets}")
    chip_list, condition = _chips_and_condition(flag_values)
    model, data, model_path = model_flags.load(flag_values)
  except (FileNotFoundError, TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  evaluator = evaluation.Evaluator(model, data.test_dataset())
  report = sensitivity_lib.sensitivity(evaluator, chip_list, condition, by=flag_values.by,
                                       offsets=offsets, progress=lambda s: print(s, flush=True))
  text = table(report)
  print(text, flush=True)
  if flag_values.output:
    record = report.to_dict()
    record["metadata"] = {"tool": "bin/sensitivity", "model_path": os.path.abspath(model_path)}
    files.write_json(flag_values.output, record)
    print(f"wrote {flag_values.output}")
  if flag_values.plot:
    print(f"wrote {plot(report, flag_values.plot)}")


if __name__ == "__main__":  # python -m tfbet.cli.sensitivity
  launch.start("sensitivity")
