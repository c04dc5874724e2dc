"""Comparing several models' evaluation results: checks, table rows, bin/compare."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfbet import comparison
from tfbet import evaluation
from tfbet.cli import compare_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_results(name, counts, clean=3, n=100, digest="data", kind="rate"):
  """Results with ``counts`` = {(chip, condition, offset): errors}."""
  return evaluation.Results(model={"name": name, "digest": name, "num_weights": 10},
                            n=n, data_digest=digest, clean_errors=clean, condition_kind=kind,
                            errors=counts)


def two_models():
  a = make_results("a", {("c1", 0.01, 0): 5, ("c2", 0.01, 0): 7, ("c1", 0.1, 0): 20,
                         ("c2", 0.1, 0): 30})
  b = make_results("b", {("c1", 0.01, 0): 4, ("c2", 0.01, 0): 4, ("c1", 0.05, 0): 6},
                   clean=2)
  return a, b


def test_rate_rows_hold_mean_and_std_over_chips_per_model():
  a, b = two_models()
  rows = comparison.rate_rows([a, b])
  assert [row.rate for row in rows] == [0.01, 0.05, 0.1]
  first = rows[0].summaries
  assert first[0].mean == pytest.approx(np.mean([0.05, 0.07]))
  assert first[0].std == pytest.approx(np.std([0.05, 0.07]))
  assert first[1].mean == pytest.approx(0.04) and first[1].std == 0
  assert rows[1].summaries[0] is None and rows[1].summaries[1].num_chips == 1
  assert rows[2].summaries[1] is None and rows[2].summaries[0].mean == pytest.approx(0.25)


def test_results_on_different_test_sets_are_refused_naming_the_files_and_the_difference():
  a, _ = two_models()
  other = make_results("b", {("c1", 0.01, 0): 4}, digest="other data")
  with pytest.raises(ValueError, match="b.json and a.json do not compare: test set differs: "
                                       "100 examples each, but other images, labels or order"):
    comparison.check_comparable([a, other], sources=["a.json", "b.json"])
  fewer = make_results("b", {("c1", 0.01, 0): 4}, n=50)
  with pytest.raises(ValueError, match="test set differs: 50 vs 100 examples"):
    comparison.check_comparable([a, fewer], sources=["a.json", "b.json"])
  current = make_results("b", {("c1", 0.01, 0): 4}, digest=evaluation.DATA_DIGEST_PREFIX + "ab")
  with pytest.raises(ValueError, match="b.json and a.json do not compare: a.json was written by "
                                       "an older tfbet, whose test-set digest depended on the "
                                       "batch size, .*: evaluate it again"):
    comparison.check_comparable([a, current], sources=["a.json", "b.json"])
  voltages = make_results("v", {("chip1", 0.9, 0): 4}, kind="voltage")
  with pytest.raises(ValueError, match="results_list\\[1\\] and results_list\\[0\\] do not "
                                       "compare: one measures voltages, the other rates"):
    comparison.check_comparable([a, voltages])
  with pytest.raises(ValueError, match="distinct"):
    comparison.check_comparable([a, a], labels=["x", "x"])
  with pytest.raises(ValueError, match="one label per result"):
    comparison.check_comparable([a], labels=["x", "y"])


def test_default_labels_are_model_names_made_distinct():
  a, b = two_models()
  assert comparison.check_comparable([a, b]) == ["a", "b"]
  assert comparison.check_comparable([a, a]) == ["a #0", "a #1"]


def test_differing_chip_sets_are_named_per_condition():
  a, b = two_models()
  differ = comparison.chip_sets_differ([a, b])
  assert set(differ) == {0.05, 0.1}
  assert differ[0.1] == [["c1", "c2"], []]
  table = compare_lib.rates_table([a, b], ["A", "B"])
  assert "NOTE: different chips at p = 10 %" in table
  assert "6.00 \u00b1 1.00 (2)" in table  # a at p = 1 %: chips 5 % and 7 %.


def test_voltage_rows_hold_mean_min_max_over_offsets(tmp_path):
  a = make_results("a", {("chip1", 0.9, 0): 10, ("chip1", 0.9, 8): 20, ("chip1", 0.8, 0): 50},
                   kind="voltage")
  b = make_results("b", {("chip1", 0.9, 0): 5}, kind="voltage")
  rows = comparison.voltage_rows([a, b])
  assert [(c, v) for c, v, _ in rows] == [("chip1", 0.8), ("chip1", 0.9)]
  cell = rows[1][2][0]
  assert (cell.mean, cell.min, cell.max, cell.num_offsets) == (0.15, 0.1, 0.2, 2)
  assert rows[0][2][1] is None
  assert "15.00 [10.00, 20.00] (2)" in compare_lib.voltages_table([a, b], ["A", "B"])
  path = compare_lib.plot_voltages([a, b], ["A", "B"], str(tmp_path / "v.png"))
  assert open(path, "rb").read(8) == PNG_MAGIC


def test_compare_binary_writes_table_and_plot(tmp_path):
  paths = []
  for item in two_models():
    paths.append(item.to_json(str(tmp_path / f"{item.model['name']}.json")))
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "bin", "compare"), *paths, "--labels=A,B",
       f"--plot={tmp_path / 'c.png'}", f"--output={tmp_path / 'c.txt'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert process.returncode == 0, process.stdout + process.stderr
  assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
  text = (tmp_path / "c.txt").read_text()
  assert "clean Err 3.00 %" in text and "Err 2.00" in text
  bad = subprocess.run(
      [sys.executable, os.path.join(REPO, "bin", "compare"), paths[0], "--labels=A,B"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "one label per result" in bad.stderr
  record = two_models()[1].to_dict()
  record["data"]["n"] = 10**400  # crashed with an OverflowError before
  (tmp_path / "huge.json").write_text(json.dumps(record))
  huge = subprocess.run(
      [sys.executable, os.path.join(REPO, "bin", "compare"), paths[0], str(tmp_path / "huge.json")],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert huge.returncode != 0 and "Traceback" not in huge.stderr, huge.stderr
  assert "huge.json: invalid evaluation result (data.n must be in [1, 9007199254740992], got an " \
         "integer of 401 digits)" in huge.stderr
