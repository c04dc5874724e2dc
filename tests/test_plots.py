"""PNG figures of chips: fault maps and the pattern the weights meet."""
import pathlib

import numpy as np
import pytest

from tfbet import chips
from tfbet import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_error_map_is_written_as_png(tmp_path):
  chip = chips.simulate_profiled_chip(128, 64, [0.8, 0.85], seed=0)
  path = plots.draw_error_map(chip, 0.8, tmp_path / "map.png", region=(64, 64))
  assert pathlib.Path(path).read_bytes()[:8] == PNG_SIGNATURE
  with pytest.raises(ValueError, match="region"):
    plots.draw_error_map(chip, 0.8, tmp_path / "big.png", region=(256, 64))
  with pytest.raises(ValueError, match="not profiled"):
    plots.draw_error_map(chip, 0.9, tmp_path / "none.png", region=(64, 64))


def test_error_map_of_a_chip_without_maps_is_refused_naming_its_type(tmp_path):
  with pytest.raises(TypeError, match="profiled chip.*RandomChip"):
    plots.draw_error_map(chips.RandomChip(0), 0.8, tmp_path / "map.png")
  assert not (tmp_path / "map.png").exists()


def test_new_figure_has_the_requested_size_in_inches():
  figure = plots.new_figure(figsize=(4, 3))
  np.testing.assert_allclose(figure.get_size_inches(), [4, 3])
