"""The binaries, one module each (``launch.BINARIES``), and the modules they share.

Each binary once had a second module ``<name>_lib`` for its logic, and ``eval_lib`` was shared
by six binaries (docs/design.md, §2). Such an old name still imports: each of its names is
found in the module that holds it now.
"""
import importlib
import types

# An old module -> the modules that now hold what it held (the first that has a name wins).
_MOVED = {
    "train_lib": ("training_job",),
    "eval_lib": ("eval", "model_flags", "chip_flags", "evaluation_run"),
    "eval_chips_lib": ("eval_chips", "chip_flags"),
    "reproduce_lib": ("suites", "suite_jobs", "reproduce"),
    "bisect_rate_lib": ("bisect_rate",),
    "chip_map_lib": ("chip_map",),
    "compare_lib": ("compare",),
    "diagnose_lib": ("diagnose",),
    "energy_budget_lib": ("energy_budget",),
    "sensitivity_lib": ("sensitivity",),
    "simulate_chips_lib": ("simulate_chips",),
    "weight_noise_lib": ("weight_noise",),
}


class _MovedModule(types.ModuleType):
  """An old module name whose attributes are looked up in the modules that hold them now.

  Those modules are imported with it, as the old module was: importing ``train_lib`` still
  registers the training job's gin configurables before anything reads a gin file.
  """

  def __init__(self, name, homes):
    super().__init__(f"{__name__}.{name}")
    self.homes = tuple(importlib.import_module(f"{__name__}.{home}") for home in homes)

  def __getattr__(self, attribute):
    for home in self.homes:
      if hasattr(home, attribute):
        return getattr(home, attribute)
    raise AttributeError(f"{self.__name__} moved to {', '.join(h.__name__ for h in self.homes)}; "
                         f"none of them has {attribute!r}")


def __getattr__(name):
  if name not in _MOVED:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  return _MovedModule(name, _MOVED[name])
