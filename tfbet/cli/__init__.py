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
    "reproduce_lib": ("suites", "reproduce"),
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
  """An old module name whose attributes are looked up in the modules that hold them now."""

  def __init__(self, name, homes):
    super().__init__(f"{__name__}.{name}")
    self.homes = tuple(f"{__name__}.{home}" for home in homes)

  def __getattr__(self, attribute):
    for home in self.homes:
      module = importlib.import_module(home)
      if hasattr(module, attribute):
        return getattr(module, attribute)
    raise AttributeError(f"{self.__name__} moved to {', '.join(self.homes)}; none of them has "
                         f"{attribute!r}")


def __getattr__(name):
  if name not in _MOVED:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  return _MovedModule(name, _MOVED[name])
