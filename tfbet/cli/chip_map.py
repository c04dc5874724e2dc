r"""A profiled chip's fault map at a voltage and the bit errors the stored weights meet there.

Examples:
  tfbet-chip-map --chip_file=runs/chips/chip2.npz --voltage=0.798 --run_dir=runs/mnist_rquant \
      --offset=0 --plot=runs/eval/chip2_map.png
See tfbet/cli/chip_map.py.
"""
import os

from absl import app
from absl import flags

from tfbet import chip_models
from tfbet import files
from tfbet import lazy_modules
from tfbet import plots
from tfbet import weight_map
from tfbet.cli import launch

memory = lazy_modules.module("tfbet.memory")  # TensorFlow: not for --help

MEMORY_IMAGE = "memory.npz"


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/chip_map on ``flag_values``."""
  flags.DEFINE_string("chip_file", None, "Profiled chip file (.npz, tfbet.chips format).",
                      flag_values=flag_values)
  flags.DEFINE_float("voltage", None, "Normalized voltage, profiled in the chip file (default: "
                     "its lowest).", flag_values=flag_values)
  flags.DEFINE_integer("offset", 0, "Bit address (>= 0) of the first weight on the array.",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_string("run_dir", None, f"Output directory of bin/train (its {MEMORY_IMAGE} is "
                      "read). Exclusive with --memory_image.", flag_values=flag_values)
  flags.DEFINE_string("memory_image", None, "Path of a memory image (.npz, "
                      "tfbet.memory.export_image). Exclusive with --run_dir.",
                      flag_values=flag_values)
  flags.DEFINE_string("plot", None, "Path of the PNG to write.", flag_values=flag_values)
  flags.DEFINE_string("output", None, "Optional JSON with the per tensor x bit probabilities.",
                      flag_values=flag_values)


def table(pattern):
  precision = pattern.per_bit.size
  width = max(12, *(len(n) for n in pattern.tensors))
  lines = [f"chip {pattern.chip} at V/Vmin = {pattern.voltage:g}, offset {pattern.offset}: "
           f"expected changed bits {pattern.expected_changed_bits:.1f}",
           f"{'tensor':>{width}} " + " ".join(f"{f'bit {b} %':>8}" for b in range(precision))]
  for name, row in zip(pattern.tensors, pattern.per_tensor):
    lines.append(f"{name:>{width}} " + " ".join(f"{100 * v:8.4f}" for v in row))
  lines.append(f"{'all':>{width}} " + " ".join(f"{100 * v:8.4f}" for v in pattern.per_bit))
  lines.append("cells: probability that a stored bit changes (0-to-1 faults on stored 0s, "
               "1-to-0 faults on stored 1s)")
  return "\n".join(lines)


def main(argv):
  """A profiled chip at a voltage and the errors the stored weights meet.

  Reads a chip file (bin/simulate_chips or a real profiled chip) and a memory image (the
  ``memory.npz`` that bin/train writes, ``tfbet.memory.export_image``: the stored codes and the
  layout), and draws the chip's fault map with where each tensor starts at ``--offset``, the
  probability that a stored bit changes per tensor and bit position, and per bit position
  (``tfbet.weight_map``). Nothing is evaluated: this is the exact expectation for the stored codes.
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  if not flag_values.chip_file:
    raise app.UsageError("--chip_file is required")
  if (flag_values.run_dir is None) == (flag_values.memory_image is None):
    raise app.UsageError("give exactly one of --run_dir and --memory_image")
  path = flag_values.memory_image or os.path.join(flag_values.run_dir, MEMORY_IMAGE)
  try:
    chip = chip_models.ProfiledChip.load(flag_values.chip_file)
    voltage = chip.conditions[0] if flag_values.voltage is None else flag_values.voltage
    chip.voltage_index(voltage)
    image = memory.read_image(path)
  except (FileNotFoundError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  pattern = weight_map.met_pattern(chip, voltage, image, flag_values.offset)
  print(table(pattern), flush=True)
  if flag_values.output:
    record = {"chip": pattern.chip, "voltage": pattern.voltage, "offset": pattern.offset,
              "tensors": list(pattern.tensors), "per_tensor": pattern.per_tensor.tolist(),
              "per_bit": pattern.per_bit.tolist(),
              "expected_changed_bits": pattern.expected_changed_bits,
              "memory_image": os.path.abspath(path)}
    files.write_json(flag_values.output, record)
    print(f"wrote {flag_values.output}")
  if flag_values.plot:
    footer = (f"memory image {path}: {plots.describe_scheme(image['scheme'].to_dict())}, "
              f"{int(sum(entry['size'] for entry in image['layout']))} weights in faulty memory")
    print(f"wrote {plots.draw_met_pattern(chip, pattern, flag_values.plot, footer=footer)}")


if __name__ == "__main__":  # python -m tfbet.cli.chip_map
  launch.start("chip_map")
