r"""RErr of a trained model on profiled chip files at their voltages (App. C.1, Tab. 5, App. G.5).

Example:
  tfbet-simulate-chips --preset=chip1 --output=runs/chips/chip1.npz
  tfbet-eval-chips --run_dir=runs/mnist_randbet --chip_files=runs/chips/chip1.npz --offsets=4 \
      --output=runs/eval/chips.json --plot=runs/eval/chips.png
--runner, --beam_options and --worker_threads (TensorFlow threads per process) work as in
tfbet-eval. See tfbet/cli/eval_chips.py.
"""
import os

from absl import app
from absl import flags

from tfbet import checks
from tfbet import evaluation
from tfbet.cli import chip_flags
from tfbet.cli import evaluation_run
from tfbet.cli import launch
from tfbet.cli import model_flags
from tfbet.cli import reporting

DEFAULT_NUM_OFFSETS = 4


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/eval_chips on ``flag_values``."""
  model_flags.define_flags(flag_values)
  flags.DEFINE_list(
      "chip_files", [],
      "Comma-separated chip files (.npz, format of tfbet.chips.ProfiledChip.save), e.g. from "
      "bin/simulate_chips. Chip names (stored in the files) must be distinct.",
      flag_values=flag_values)
  flags.DEFINE_list(
      "voltages", [],
      "Comma-separated normalized voltages to evaluate; each must be profiled in every chip "
      "file. Default: all voltages of each file.", flag_values=flag_values)
  flags.DEFINE_list(
      "offsets", [str(DEFAULT_NUM_OFFSETS)],
      "Where the weights start on a chip's bit-cell array (App. C.1). One integer N: N offsets "
      "evenly spaced over the array, k * rows * cols / N rounded down to a multiple of 8 bits "
      "(--offsets=1 is the single mapping at bit 0). Two or more integers: these bit offsets "
      f"(multiples of 8, wrapping around the array). At most {checks.MAX_OFFSETS} offsets.",
      flag_values=flag_values)
  flags.DEFINE_integer(
      "seed", 0,
      "Seed (>= 0) of the transient faults (cells that fail with probability < 1); persistent "
      "faults do not depend on it.", lower_bound=0, flag_values=flag_values)


def parse_voltages(values):
  voltages = []
  for value in checks.bounded_list(values, "voltages", checks.MAX_CONDITIONS):
    try:
      voltages.append(float(value))
    except ValueError as error:
      raise ValueError(f"voltages must be numbers (normalized by V_min), got {value!r}") \
          from error
  if any(not v > 0 or v == float("inf") for v in voltages):
    raise ValueError(f"voltages must be finite and > 0, got {list(values)}")
  if len(set(voltages)) != len(voltages):
    raise ValueError(f"voltages must be distinct, got {list(values)}")
  return voltages


def parse_offsets(values):
  """--offsets -> ("count", N) or ("explicit", [bit offsets]), at most checks.MAX_OFFSETS."""
  values = checks.bounded_list(values, "offsets", checks.MAX_OFFSETS)
  try:
    numbers = [int(value) for value in values]
  except ValueError as error:
    raise ValueError(f"offsets must be integers, got {list(values)}") from error
  if not numbers:
    raise ValueError("offsets must not be empty")
  if len(numbers) == 1:
    if not 1 <= numbers[0] <= checks.MAX_OFFSETS:
      raise ValueError(f"a single --offsets value is the number of offsets and must be in "
                       f"[1, {checks.MAX_OFFSETS}], got {numbers[0]}")
    return "count", numbers[0]
  if any(o < 0 or o % 8 for o in numbers):
    raise ValueError(f"explicit offsets are bit offsets and must be non-negative multiples of "
                     f"8, got {numbers}")
  if len(set(numbers)) != len(numbers):
    raise ValueError(f"explicit offsets must be distinct, got {numbers}")
  return "explicit", numbers


def evenly_spaced_offsets(num_cells, count):
  """``count`` bit offsets spread evenly over an array of ``num_cells`` bits (multiples of 8)."""
  if count < 1:
    raise ValueError(f"count must be >= 1, got {count}")
  offsets = [(k * num_cells // count) // 8 * 8 for k in range(count)]
  if len(set(offsets)) != count:
    raise ValueError(f"cannot place {count} distinct byte-aligned offsets on {num_cells} bits")
  return offsets


def chip_offsets(spec):
  """Callable chip -> offsets for ``Evaluator.run``, from ``parse_offsets``' result."""
  kind, value = spec
  if kind == "count":
    return lambda chip: evenly_spaced_offsets(chip.num_cells, value)
  return lambda chip: list(value)


def main(argv):
  """RErr of a trained model on profiled chips (App. C.1, Tab. 5).

  Each chip file (``tfbet.chips.ProfiledChip`` format: the paper's profiled chips if you have them,
  or a file from bin/simulate_chips) holds per-cell fault probabilities at a few voltages. The
  weights are mapped linearly onto the chip's bit-cell array starting at a bit offset and wrapping
  around; RErr at a voltage is averaged over several offsets (App. C.1: "various different
  mappings"). For every chip and voltage this prints the measured rates (p, p_0t1, p_1t0, in %), the
  RErr mean over offsets (and its spread over offsets) and the energy saved at that voltage.
  """
  flag_values = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  evaluation_run.check_outputs(flag_values)
  try:
    voltages = parse_voltages(flag_values.voltages) or None
    offsets = parse_offsets(flag_values.offsets)
    chip_list = chip_flags.load_chips(flag_values.chip_files, flag_values.seed, voltages)
    # Checks the whole evaluation (offsets inside every chip, ...) before the model loads.
    evaluation.make_plan(chip_list, voltages, chip_offsets(offsets))
    model, data, model_path = model_flags.load(flag_values)
  except (FileNotFoundError, ImportError, TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  metadata = {
      "tool": "bin/eval_chips", "model_path": os.path.abspath(model_path),
      "run_dir": os.path.abspath(flag_values.run_dir) if flag_values.run_dir else None,
      "chip_files": [os.path.abspath(p) for p in flag_values.chip_files],
      "seed": flag_values.seed, "offsets": list(flag_values.offsets),
      "post_training_scheme": flag_values.scheme, "whiten": flag_values.whiten,
      "faulty_state": flag_values.faulty_state,
  }
  plans = [f"{c.name} at V/Vmin = {', '.join(f'{v:g}' for v in (voltages or c.conditions))}"
           for c in chip_list]
  print(f"evaluating {len(chip_list)} profiled chips on {data.name}: {'; '.join(plans)}",
        flush=True)
  results = evaluation_run.evaluate_chips(flag_values, model, data, chip_list, voltages,
                                          chip_offsets(offsets), reporting.print_progress,
                                          metadata)
  evaluation_run.finish(results, flag_values)


if __name__ == "__main__":  # python -m tfbet.cli.eval_chips
  launch.start("eval_chips")
