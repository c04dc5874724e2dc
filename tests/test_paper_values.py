"""The paper's numbers that the reproduction report prints beside ours, checked against the paper."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAB21 = os.path.join(ROOT, "gin", "suites", "paper", "tab21_mnist.json")
TAB2 = os.path.join(ROOT, "gin", "suites", "paper", "tab2_cifar10.json")
PAPER = os.path.join(os.path.dirname(ROOT), "shared", "paper", "bit-error-robustness.txt")


def _paper_rows(text):
  """(label, [Err, RErr...]) of Tab. 21's m = 8 and 4 bit rows, read from the paper's text."""
  lines = text[text.index("MNIST: summary results for"):].splitlines()
  rows = []
  for line in lines[3:]:
    cells = [c.strip() for c in line.split("\t")]
    numbers = [c for c in cells[2:] if c]
    if len(cells) < 3 or len(numbers) != 8:
      break  # the m = 2 rows hold five RErr values
    rows.append((cells[1], [float(n) for n in numbers]))
  return rows


def _paper_and_ours(parse, path):
  """(the paper's rows as ``parse`` reads them from its text, our typed file at ``path``)."""
  if not os.path.exists(PAPER):
    pytest.skip(f"the paper's text is not at {PAPER}")
  with open(PAPER, encoding="utf-8") as f:
    paper = parse(f.read())
  with open(path, encoding="utf-8") as f:
    return paper, json.load(f)


def test_tab21_values_are_the_papers_row_by_row():
  paper, ours = _paper_and_ours(_paper_rows, TAB21)
  assert len(paper) == len(ours["rows"]) == 25
  for (label, numbers), row in zip(paper, ours["rows"]):
    assert row["paper_label"] == label
    assert [row["err"]] + row["rerr"] == numbers, label
  assert [r["precision"] for r in ours["rows"]] == [8] * 11 + [4] * 14
  # App. G.8's sentence: CLIPPING 0.025 at p = 20 % (the last column), 8 bit.
  clipping = next(r for r in ours["rows"] if r["model"] == "CLIPPING 0.025")
  assert ours["rates_percent"][-1] == 20 and clipping["rerr"][-1] == 32.68


def test_tab21_rows_are_complete_and_named_once():
  with open(TAB21, encoding="utf-8") as f:
    ours = json.load(f)
  keys = [(r["precision"], r["model"]) for r in ours["rows"]]
  assert len(set(keys)) == len(keys)
  for row in ours["rows"]:
    assert len(row["rerr"]) == len(ours["rates_percent"])
    assert all(0 <= v <= 100 for v in [row["err"]] + row["rerr"])


def _tab2_rows(text):
  """(label, [Err, Conf, Conf p=1, RErr p=0.1, RErr p=1]) of Tab. 2, read from the paper's text."""
  lines = text[text.index("Table 2: Weight Clipping Robustness"):].splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("Model\tErr\tConf"))
  assert lines[start + 1].split("\t") == ["(CIFAR10)", "in %", "in %", "p=1", "p = 0.1", "p=1"]
  rows = []
  for line in lines[start + 2:]:
    if not line.strip():
      break
    label, *numbers = line.split("\t")
    rows.append((label, [float(n) for n in numbers]))
  return rows


def test_tab2_values_are_the_papers_row_by_row():
  paper, ours = _paper_and_ours(_tab2_rows, TAB2)
  assert len(paper) == len(ours["rows"]) == 8
  assert ours["rates_percent"] == [0.1, 1] and ours["confidence_rate_percent"] == 1
  for (label, numbers), row in zip(paper, ours["rows"]):
    assert row["paper_label"] == label
    assert [row["err"]] + row["confidence"] + row["rerr"] == numbers, label
  assert {r["precision"] for r in ours["rows"]} == {8}
  # Sec. 5.2 reads the same table: label smoothing loses robustness at every w_max it shows.
  by_model = {r["model"]: r for r in ours["rows"]}
  for w_max in ("0.15", "0.1", "0.05"):
    assert by_model[f"CLIPPING {w_max} + LS"]["rerr"][1] > by_model[f"CLIPPING {w_max}"]["rerr"][1]
