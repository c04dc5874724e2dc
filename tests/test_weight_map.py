"""The bit errors stored weights meet on a profiled chip: cells, exact change probabilities."""
import numpy as np
import pytest

from tfbet import chips
from tfbet import plots
from tfbet import quantization
from tfbet import weight_map


def test_cells_wrap_around_the_array_row_major():
  cells = weight_map.cell_indices(3, 4, offset=16, num_cells=24)
  assert cells.tolist() == [[16, 17, 18, 19], [0, 1, 2, 3], [8, 9, 10, 11]]


def persistent_chip():
  """A 4 x 16 chip whose faults all have probability 1 (so its masks are deterministic)."""
  rng = np.random.default_rng(0)
  kind = rng.integers(0, 3, size=(1, 4, 16))  # 0 healthy, 1 stuck at 1 (0-to-1), 2 stuck at 0.
  return chips.ProfiledChip("stuck", [0.8], (kind == 1).astype(np.float32),
                            (kind == 2).astype(np.float32))


def test_change_probabilities_equal_the_bits_the_chip_masks_change():
  chip = persistent_chip()
  codes = np.random.default_rng(1).integers(0, 256, size=20, dtype=np.uint8)
  for offset in (0, 8, 40, 13):
    probabilities = weight_map.change_probabilities(codes, 6, *chip.probability_maps(0.8),
                                                    offset=offset)
    _, set_mask, clear_mask = chip.masks(codes.size, 6, 0.8, offset=offset)
    stored = (codes | set_mask) & ~clear_mask
    changed = ((codes ^ stored)[:, None] >> np.arange(6, dtype=np.uint8)) & 1
    np.testing.assert_array_equal(probabilities, changed)


def test_met_pattern_averages_per_tensor_and_bit(tmp_path):
  chip = persistent_chip()
  codes = np.random.default_rng(2).integers(0, 256, size=12, dtype=np.uint8)
  image = {"codes": codes, "scheme": quantization.get_scheme("rquant", precision=8),
           "layout": [{"name": "a/kernel:0", "offset": 0, "size": 5},
                      {"name": "a/bias:0", "offset": 5, "size": 7}]}
  pattern = weight_map.met_pattern(chip, 0.8, image, offset=8)
  full = weight_map.change_probabilities(codes, 8, *chip.probability_maps(0.8), offset=8)
  np.testing.assert_allclose(pattern.per_tensor[0], full[:5].mean(axis=0))
  np.testing.assert_allclose(pattern.per_tensor[1], full[5:].mean(axis=0))
  assert pattern.expected_changed_bits == pytest.approx(full.sum())
  assert pattern.starts == (8, 48)
  assert pattern.tensors == ("0: a/kernel", "1: a/bias")
  path = plots.draw_met_pattern(chip, pattern, str(tmp_path / "map.png"))
  assert open(path, "rb").read(4) == b"\x89PNG"
