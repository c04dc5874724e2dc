"""bin/reproduce on the tiny suite: trains, evaluates, skips finished work, writes the report."""
import os
import subprocess
import sys

import pytest

from tfbet import evaluation
from tfbet.cli import reproduce_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reproduce(output_dir, report, *extra):
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "reproduce"), "--suite=tiny",
       f"--output_dir={output_dir}", f"--report={report}", *extra],
      capture_output=True, text=True, timeout=900, check=False)


def test_tiny_suite_trains_evaluates_and_reports_from_its_own_runs(tmp_path, real_mnist):  # pylint: disable=unused-argument
  output_dir, report = tmp_path / "runs", tmp_path / "docs" / "reproduction.md"
  result = _reproduce(output_dir, report)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  suite = reproduce_lib.SUITES["tiny"]
  for run in suite.runs:
    results = evaluation.Results.from_json(str(output_dir / run.name / "eval_random.json"))
    assert len(results.chip_names) == suite.num_chips
    assert sorted(round(100 * c, 6) for c in results.conditions) == sorted(suite.rates)
  assert (output_dir / "pattbet" / "eval_pattern.json").exists()
  assert (output_dir / "q_rquant" / "eval_chips.json").exists()
  text = report.read_text()
  assert "## Tab. 1 / Tab. 8" in text and "## Tab. 3" in text and "Tab. 5" in text
  assert "Paper findings checked" in text and "Runs done: 3 of 3" in text
  assert (report.parent / "figures" / "tiny_fig2.png").stat().st_size > 1000
  # The numbers in the table are the measured ones.
  rquant = evaluation.Results.from_json(str(output_dir / "q_rquant" / "eval_random.json"))
  assert f"| {100 * rquant.clean_error:.2f} |" in text

  # A second call finds everything done and only re-renders the report.
  again = _reproduce(output_dir, report)
  assert again.returncode == 0
  assert again.stdout.count("done already") == len(suite.runs)


def test_nothing_to_report_never_replaces_the_report(tmp_path):
  report = tmp_path / "docs" / "reproduction.md"
  report.parent.mkdir()
  report.write_text("the committed report")
  suite = reproduce_lib.SUITES["tiny"]
  (tmp_path / "empty").mkdir()
  for output_dir, message in ((tmp_path / "empty", "holds no evaluated run"),
                              (tmp_path / "missing", "does not exist")):
    with pytest.raises(ValueError, match=message):
      reproduce_lib.write_report(suite, str(output_dir), str(report))
  with pytest.raises(ValueError, match=r"\['q_rquantt'\] are not runs of suite 'tiny'"):
    reproduce_lib.check_only(suite, ["q_rquantt"])
  # The binary refuses the same way, before any work.
  for extra in (("--report_only",), ("--only=q_rquantt",)):
    result = _reproduce(tmp_path / "missing", report, *extra)
    assert result.returncode != 0, result.stdout
    assert "does not exist" in result.stderr or "are not runs" in result.stderr
  assert report.read_text() == "the committed report"
  assert not (report.parent / "figures").exists()
  assert not (tmp_path / "missing").exists()
