r"""Why a model survives bit errors: confidence, weight redundancy, effect per bit position.

Examples:
  tfbet-diagnose --run_dir=runs/mnist_randbet --rate=2.5 --plot=runs/eval/diagnose.png \
      --output=runs/eval/diagnose.json
See tfbet/cli/diagnose.py.
"""
import dataclasses
import os

from absl import app
from absl import flags
import numpy as np

from tfbet import chip_models
from tfbet import files
from tfbet import lazy_modules
from tfbet import plots
from tfbet.cli import chip_flags
from tfbet.cli import launch
from tfbet.cli import model_flags

diagnostics = lazy_modules.module("tfbet.diagnostics")  # TensorFlow: not for --help
memory = lazy_modules.module("tfbet.memory")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/diagnose on ``flag_values``."""
  model_flags.define_flags(flag_values, result_flags=False)
  flags.DEFINE_string(
      "output", None,
      "Optional path of a JSON file with the confidence statistics, the redundancy per tensor "
      "and the effect per bit position.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "plot", None,
      "Optional path of a PNG with the three panels.",
      flag_values=flag_values)
  flags.DEFINE_float("rate", 1.0, "Bit error rate p in PERCENT of the chip of the confidence "
                     "panel, in (0, 100).", flag_values=flag_values)
  flags.DEFINE_integer("chip_seed", chip_models.FIRST_EVALUATION_SEED,
                       "Seed of that random chip (default: bin/eval's first chip).",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_float("threshold", 0.9, "A weight is 'near the maximum' if |w| >= threshold * "
                     "max |w| of its tensor; in (0, 1].", flag_values=flag_values)
  flags.DEFINE_float("flip_share", 1.0, "Percent of the weights (in (0, 100]) in which one bit "
                     "position is flipped for the bit position panel.", flag_values=flag_values)
  flags.DEFINE_integer("seed", 0, "Seed of the weights chosen for the bit position panel.",
                       lower_bound=0, flag_values=flag_values)


def table(confidence, redundancy, effects):
  summary = confidence.summary()
  lines = [f"{'':>10} {'Err %':>6} {'conf %':>7} {'conf ok %':>9} {'conf wrong %':>12} "
           f"{'max logit':>9}"]
  for name in ("clean", "perturbed"):
    row = summary[name]
    cells = [f"{100 * row[k]:.2f}" if row[k] is not None else "-"
             for k in ("mean_confidence_correct", "mean_confidence_wrong")]
    lines.append(f"{name:>10} {100 * row['error']:6.2f} {100 * row['mean_confidence']:7.2f} "
                 f"{cells[0]:>9} {cells[1]:>12} {row['mean_max_logit']:9.2f}")
  lines.append(f"perturbed: chip {confidence.chip} at p = {100 * confidence.condition:g} %; "
               "conf: mean softmax confidence (of correct / wrong predictions)")
  lines.append(f"weights with |w| >= {redundancy.threshold:g} max|w| of their tensor: "
               f"{100 * redundancy.overall:.2f} %")
  lines.append(f"{'bit':>4} {'flipped':>8} {'logit change %':>14} {'changed pred. %':>15}")
  for effect in effects:
    lines.append(f"{effect.bit:4d} {effect.num_flipped:8d} "
                 f"{100 * effect.relative_logit_change:14.2f} "
                 f"{100 * effect.changed_predictions:15.2f}")
  return "\n".join(lines)


def model_info(model, name):
  """A result-like ``model`` field (name, scheme, coverage) of a quantized Keras model."""
  layout = memory.layout(model)
  return {"name": name, "scheme": layout.scheme.to_dict(),
          "coverage": memory.coverage(layout).to_dict()}


def plot(name, confidence, redundancy, effects, path, info=None):
  """PNG: confidence, weight magnitudes and bit position effects; the footer names the scheme
  and coverage of ``info`` (``model_info``)."""
  figure = plots.new_figure(figsize=(14, 4))
  left, middle, right = figure.subplots(1, 3)
  bins = np.linspace(0, 1, 41)
  for label, values, color in (("clean", confidence.clean_logits, "C0"),
                               (f"p = {100 * confidence.condition:g} % ({confidence.chip})",
                                confidence.perturbed_logits, "C3")):
    left.hist(diagnostics.confidences(values), bins=bins, histtype="step", color=color,
              label=label, linewidth=1.5)
  left.set_yscale("log")
  left.set_xlabel("softmax confidence")
  left.set_ylabel("test examples")
  left.legend(fontsize="small")
  left.set_title("confidence, clean vs. bit errors")
  middle.hist(redundancy.magnitudes, bins=bins, color="C2")
  middle.axvline(redundancy.threshold, color="black", linestyle=":")
  middle.set_yscale("log")
  middle.set_xlabel("|w| / max |w| of its tensor")
  middle.set_ylabel("weights")
  middle.set_title(f"{100 * redundancy.overall:.1f} % of weights at >= "
                   f"{redundancy.threshold:g} max|w|")
  bits = [e.bit for e in effects]
  right.bar(bits, [100 * e.relative_logit_change for e in effects], color="C1")
  right.set_yscale("log")
  right.set_xticks(bits)
  right.set_xlabel("flipped bit position (0 = least significant)")
  right.set_ylabel("relative change of the logits in %")
  right.set_title(f"bit flipped in {effects[0].num_flipped} weights")
  figure.suptitle(name)
  plots.add_footer(figure, [plots.measured_with(info or {"name": name})])
  files.save_figure(figure, path)
  return path


def main(argv):
  """Why a model survives bit errors (or not), in one table and one PNG.

  Three panels (``tfbet.diagnostics``): the softmax confidence of the test examples clean and on
  one random chip at ``--rate`` (Fig. 10, Tab. 2); the weights' magnitudes relative to their
  tensor's largest, with the share near it (``--threshold``, Fig. 6); and, per bit position, the
  relative change of the logits when that bit flips in ``--flip_share`` percent of the weights.
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  for flag, low, high in (("rate", 0, 100), ("flip_share", 0, 100)):
    value = getattr(flag_values, flag)
    if not low < value <= high or (flag == "rate" and value == 100):
      raise app.UsageError(f"--{flag} is in percent and must be in ({low}, {high}), got {value}")
  if not 0 < flag_values.threshold <= 1:
    raise app.UsageError(f"--threshold must be in (0, 1], got {flag_values.threshold}")
  try:
    model, data, model_path = model_flags.load(flag_values)
  except (FileNotFoundError, TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  images, labels = diagnostics.dataset_arrays(data.test_dataset())
  (chip,) = chip_flags.make_chips("random", [flag_values.chip_seed])
  confidence = diagnostics.confidence_report(model, images, labels, chip, flag_values.rate / 100)
  redundancy = diagnostics.weight_redundancy(model, flag_values.threshold)
  effects = diagnostics.bit_position_effects(model, images, flag_values.flip_share / 100,
                                             flag_values.seed)
  print(table(confidence, redundancy, effects), flush=True)
  if flag_values.output:
    record = {"model_path": os.path.abspath(model_path), "confidence": confidence.summary(),
              "chip": confidence.chip, "rate": confidence.condition, "n": int(len(labels)),
              "redundancy": {"threshold": redundancy.threshold, "overall": redundancy.overall,
                             "per_tensor": [list(t) for t in redundancy.per_tensor]},
              "bit_positions": [dataclasses.asdict(e) for e in effects]}
    files.write_json(flag_values.output, record)
    print(f"wrote {flag_values.output}")
  if flag_values.plot:
    name = model.name if not flag_values.run_dir else os.path.basename(
        os.path.normpath(flag_values.run_dir))
    info = model_info(model, name)
    print(f"wrote {plot(name, confidence, redundancy, effects, flag_values.plot, info)}")


if __name__ == "__main__":  # python -m tfbet.cli.diagnose
  launch.start("diagnose")
