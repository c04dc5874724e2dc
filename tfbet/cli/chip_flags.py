"""Chips from the binaries' flags: random chips of a kind (--chip_kind), profiled chip files.

The kinds of chips a binary makes from a seed come from the registry of
``tfbet.chip_models`` (``CHIP_KINDS``: the registered kinds built from the settings these flags
give); a new kind registers itself there and adds its words to --chip_kind's help here.
"""
from absl import flags

from tfbet import chip_models

# The settings --chip_kind's chips are built from.
_SETTINGS = ("seed", "fraction_0to1")
CHIP_KINDS = chip_models.kinds(_SETTINGS)  # ("random", "asymmetric")


def define_flags(flag_values=flags.FLAGS):
  """--chip_kind and its --fraction_0to1 (bin/eval)."""
  flags.DEFINE_enum(
      "chip_kind", "random", list(CHIP_KINDS),
      "random: symmetric bit flips (Sec. 3); asymmetric: faults that set (0-to-1, share "
      "--fraction_0to1 of p) or clear (1-to-0) bits, like profiled chips (App. C.1).",
      flag_values=flag_values)
  flags.DEFINE_float(
      "fraction_0to1", 0.5,
      "Only with --chip_kind=asymmetric: share of p due to 0-to-1 faults, in [0, 1].",
      flag_values=flag_values)


def make_chips(kind, seeds, fraction_0to1=0.5):
  """The chips of ``kind`` (one of CHIP_KINDS) with the given seeds."""
  return [chip_models.build(kind, "make_chips", seed=seed, fraction_0to1=fraction_0to1)
          for seed in seeds]


def load_chips(paths, seed=0, voltages=None):
  """Loads the chip files; checks that names are distinct and the voltages profiled."""
  if not paths:
    raise ValueError("give at least one chip file (--chip_files)")
  chip_list = []
  for path in paths:
    chip = chip_models.ProfiledChip.load(path, seed=seed)
    for voltage in voltages or ():
      chip.voltage_index(voltage)  # ValueError naming the chip and its voltages.
    chip_list.append(chip)
  names = [chip.name for chip in chip_list]
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if duplicates:
    raise ValueError(f"chip files must hold distinct chip names, got {duplicates} more than "
                     f"once in {list(paths)}")
  return chip_list
