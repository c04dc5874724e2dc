"""Chips: models of where and how low-voltage bit errors hit the weight memory (public API).

The names users need, gathered from the modules that define them, one job each:

* :mod:`tfbet.chip_models` - the chips: :class:`RandomChip` (the paper's error model, Sec. 3),
  :class:`AsymmetricRandomChip` (0-to-1 / 1-to-0 faults), :class:`ProfiledChip` (per-cell
  probability maps at a few voltages, App. C.1), the evaluation's chip seeds, and the registry
  of chip kinds (:data:`KINDS`, :func:`build`).
* :mod:`tfbet.chip_files` - the documented ``.npz`` file of a profiled chip
  (:meth:`ProfiledChip.save`, :meth:`ProfiledChip.load`).
* :mod:`tfbet.chip_simulation` - :func:`simulate_profiled_chip` and the presets ``chip1``,
  ``chip2``, ``chip3`` with the statistics of the paper's measured chips (not public).
* :mod:`tfbet.plots` - :func:`draw_error_map`, a PNG of a profiled chip's fault maps.

Nothing here needs the compiled op until a chip computes masks.
"""
# pylint: disable=unused-import
from tfbet.chip_files import CHIP_FILE_KEYS
from tfbet.chip_files import FORMAT_VERSION
from tfbet.chip_models import AsymmetricRandomChip
from tfbet.chip_models import Chip
from tfbet.chip_models import DEFAULT_NUM_CHIPS
from tfbet.chip_models import FIRST_EVALUATION_SEED
from tfbet.chip_models import KINDS
from tfbet.chip_models import ProfiledChip
from tfbet.chip_models import RandomChip
from tfbet.chip_models import build
from tfbet.chip_models import check_rate
from tfbet.chip_models import default_chip_seeds
from tfbet.chip_simulation import APP_C1_TABLE
from tfbet.chip_simulation import DEFAULT_COLUMN_CONCENTRATION
from tfbet.chip_simulation import DEFAULT_WEAK_COLUMN_FRACTION
from tfbet.chip_simulation import PATTERNS
from tfbet.chip_simulation import PRESET_ABSOLUTE_TOLERANCE
from tfbet.chip_simulation import PRESET_RELATIVE_TOLERANCE
from tfbet.chip_simulation import PRESETS
from tfbet.chip_simulation import TRANSIENT_PROBABILITY_RANGE
from tfbet.chip_simulation import preset_arguments
from tfbet.chip_simulation import simulate_preset
from tfbet.chip_simulation import simulate_profiled_chip
from tfbet.plots import draw_error_map

__all__ = [
    "APP_C1_TABLE", "AsymmetricRandomChip", "CHIP_FILE_KEYS", "Chip",
    "DEFAULT_COLUMN_CONCENTRATION", "DEFAULT_NUM_CHIPS", "DEFAULT_WEAK_COLUMN_FRACTION",
    "FIRST_EVALUATION_SEED", "FORMAT_VERSION", "KINDS", "PATTERNS", "PRESETS",
    "PRESET_ABSOLUTE_TOLERANCE", "PRESET_RELATIVE_TOLERANCE", "ProfiledChip", "RandomChip",
    "TRANSIENT_PROBABILITY_RANGE", "build", "check_rate", "default_chip_seeds", "draw_error_map",
    "preset_arguments", "simulate_preset", "simulate_profiled_chip",
]
