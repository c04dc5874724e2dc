"""What the evaluation binaries draw: every plot names the scheme and coverage it measured."""
import pytest

from tests import helpers
from tfbet import evaluation
from tfbet.cli import compare_lib
from tfbet.cli import reporting


def _rates(name, faulty):
  return evaluation.Results(model=helpers.model_info(name, faulty=faulty), n=100,
                            data_digest="d", clean_errors=2, condition_kind="rate",
                            errors={("a", 0.001, 0): 3, ("a", 0.01, 0): 9})


def _voltages(name):
  return evaluation.Results(model=helpers.model_info(name), n=100, data_digest="d",
                            clean_errors=2, condition_kind="voltage",
                            errors={("c", 0.9, 0): 3, ("c", 0.85, 0): 7})


@pytest.mark.parametrize("draw,lines", [
    (lambda path: reporting.plot_rates([_rates("a", 90), _rates("b", 45)], path, ["A", "B"]),
     ["A: 8-bit per-tensor asymmetric unsigned rounding, 90.00 % of 100 parameters in faulty "
      "memory",
      "B: 8-bit per-tensor asymmetric unsigned rounding, 45.00 % of 100 parameters in faulty "
      "memory"]),
    (lambda path: reporting.plot_voltages(_voltages("v"), path),
     ["v: 8-bit per-tensor asymmetric unsigned rounding, 90.00 % of 100 parameters in faulty "
      "memory"]),
    (lambda path: compare_lib.plot_voltages([_voltages("v"), _voltages("w")], ["V", "W"], path),
     ["V: 8-bit per-tensor asymmetric unsigned rounding, 90.00 % of 100 parameters in faulty "
      "memory",
      "W: 8-bit per-tensor asymmetric unsigned rounding, 90.00 % of 100 parameters in faulty "
      "memory"]),
])
def test_result_plots_are_written_and_name_each_models_scheme_and_coverage(
    tmp_path, monkeypatch, draw, lines):
  figures = helpers.capture_figures(monkeypatch)
  path = draw(tmp_path / "plot.png")
  assert (tmp_path / "plot.png").stat().st_size > 0 and str(path).endswith("plot.png")
  assert helpers.footer(figures[-1]).split("\n") == lines
