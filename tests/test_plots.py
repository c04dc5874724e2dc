"""PNG figures of chips: fault maps and the pattern the weights meet."""
import pathlib

import numpy as np
import pytest

from tests import helpers
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


def test_describe_scheme_spells_out_every_field_of_the_scheme():
  assert plots.describe_scheme(helpers.SCHEME_8BIT) == (
      "8-bit per-tensor asymmetric unsigned rounding")
  floor = dict(precision=4, per_tensor=False, asymmetric=False, unsigned=False, rounding=False,
               int_conversion="floor")
  assert plots.describe_scheme(floor) == "4-bit global symmetric signed floor"
  assert plots.describe_scheme(None) == "scheme not recorded"


def test_measured_with_names_model_scheme_and_coverage():
  info = helpers.model_info("net", faulty=2, parameters=3)
  assert plots.measured_with(info) == (
      "net: 8-bit per-tensor asymmetric unsigned rounding, 66.67 % of 3 parameters in faulty "
      "memory")
  assert plots.measured_with({"name": "old"}, "A").endswith(
      "scheme not recorded, share of parameters in faulty memory not recorded")


def test_met_pattern_plot_states_what_the_weights_were_stored_with(tmp_path, monkeypatch):
  from tfbet import weight_map  # pylint: disable=g-import-not-at-top
  figures = helpers.capture_figures(monkeypatch)
  chip = chips.simulate_profiled_chip(64, 32, [0.8], seed=0)
  pattern = weight_map.MetPattern(
      chip=chip.name, voltage=0.8, offset=0, tensors=("0: conv/kernel",), starts=(0,),
      per_tensor=np.full((1, 4), 0.01), per_bit=np.full(4, 0.01), expected_changed_bits=3.0)
  path = plots.draw_met_pattern(chip, pattern, tmp_path / "met.png", footer="4-bit image")
  assert pathlib.Path(path).read_bytes()[:8] == PNG_SIGNATURE
  assert helpers.footer(figures[-1]) == "4-bit image"


def test_footer_lines_are_wrapped_to_the_figure_width():
  figure = plots.new_figure(figsize=(4, 3))
  plots.add_footer(figure, ["word " * 30, "short"])
  lines = figure._supxlabel.get_text().split("\n")  # pylint: disable=protected-access
  assert max(len(line) for line in lines) <= 17 * 4 and lines[-1] == "short"
  assert helpers.footer(figure) == " ".join(["word"] * 30) + "\nshort"
