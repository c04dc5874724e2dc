"""Per-layer sensitivity: groups, the cut of the chip's masks, RErr with one faulty layer."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import helpers
from tfbet import chips
from tfbet import evaluation
from tfbet import memory
from tfbet import quantize_configs
from tfbet import sensitivity
from tfbet.cli import sensitivity_lib
from tfbet.compat import keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def evaluator():
  """Two branches into one classifier whose rows for branch "dead" are exactly zero.

  NORMAL quantization (symmetric, signed) stores 0 as code 0, so whatever bit errors do to the
  dead branch, the classifier multiplies its output by zero: its sensitivity must be nil.
  """
  keras.utils.set_random_seed(5)
  inputs = keras.Input((12,))
  live = keras.layers.Dense(16, activation="relu", name="live")(inputs)
  dead = keras.layers.Dense(16, activation="relu", name="dead")(inputs)
  joined = keras.layers.Concatenate()([live, dead])
  head = keras.layers.Dense(5, name="head")
  outputs = head(joined)
  kernel, bias = head.get_weights()
  kernel[16:] = 0.0
  head.set_weights([kernel, bias])
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs), "normal")
  images = np.random.default_rng(1).normal(size=(300, 12)).astype(np.float32)
  labels = np.argmax(model(images).numpy(), axis=-1)
  return evaluation.Evaluator(model, [(images, labels)])


def test_layer_groups_partition_the_memory_in_order(evaluator):
  layout = evaluator.layout
  by_layer = sensitivity.groups(evaluator.model, layout, "layer")
  # The layers' names in the float model, not tfmot's wrappers' ("quant_live").
  assert [g.name for g in by_layer] == ["live", "dead", "head"]
  assert by_layer[0].tensors == ("live/kernel", "live/bias")
  assert sum(g.num_weights for g in by_layer) == layout.num_weights
  by_tensor = sensitivity.groups(evaluator.model, layout, "tensor")
  assert len(by_tensor) == len(layout.slots) == 6
  with pytest.raises(ValueError, match="by must be one of"):
    sensitivity.groups(evaluator.model, layout, "block")


def test_restricted_masks_are_the_full_chip_cut_to_the_group(evaluator):
  layout = evaluator.layout
  masks = chips.RandomChip(1000).masks(layout.num_weights, layout.precision, 0.05)
  cut = [sensitivity.restrict(masks, layout, g)
         for g in sensitivity.groups(evaluator.model, layout, "tensor")]
  # Disjoint pieces that add up to the chip's masks, each zero outside its tensor.
  np.testing.assert_array_equal(sum(c[0].astype(np.int64) for c in cut), masks[0])
  slot = layout.slots[1]
  inside = cut[1][0][slot.offset:slot.offset + slot.size]
  np.testing.assert_array_equal(inside, masks[0][slot.offset:slot.offset + slot.size])
  assert np.count_nonzero(cut[1][0]) == np.count_nonzero(inside) > 0


def test_a_layer_whose_output_is_multiplied_by_zero_is_insensitive(evaluator):
  chip_list = [chips.RandomChip(seed) for seed in (1000, 1001, 1002)]
  report = sensitivity.sensitivity(evaluator, chip_list, 0.1, by="layer")
  names = {g.name.replace("quant_", ""): g.name for g in report.groups}
  assert report.full.clean_errors == 0
  dead = report.results[names["dead"]]
  assert all(count == 0 for count in dead.errors.values())
  live = report.results[names["live"]]
  assert live.summary()[0].mean > 0.05  # 10 % bit errors in a live layer do hurt.
  # The whole memory faulty gives exactly bin/eval's counts on the same chips.
  again = evaluator.run(chip_list, [0.1], progress=None)
  assert again.errors == report.full.errors
  # A layer's count equals an evaluation with the chip's masks zeroed outside it by hand.
  layout = evaluator.layout
  chip = chip_list[0]
  flip = chip.masks(layout.num_weights, layout.precision, 0.1)[0].copy()
  group = next(g for g in report.groups if g.name == names["live"])
  start = layout.slots[group.slots[0]].offset
  stop = start + group.num_weights
  flip[:start] = 0
  flip[stop:] = 0
  memory.load_masks(layout, flip)
  try:
    assert evaluator.errors() == live.errors[(chip.name, 0.1, 0)]
  finally:
    memory.clear_masks(layout)
  text = sensitivity_lib.table(report)
  assert "all" in text and f"{100 * live.summary()[0].mean:7.2f}" in text


def test_chips_and_offsets_are_read_no_further_than_their_limits(evaluator, monkeypatch):
  monkeypatch.setattr(sensitivity.checks, "MAX_CHIPS", 2)
  monkeypatch.setattr(sensitivity.checks, "MAX_OFFSETS", 2)
  endless = (chips.RandomChip(seed) for seed in itertools.count())
  with pytest.raises(ValueError, match="chips must have at most 2 items, got more"):
    sensitivity.sensitivity(evaluator, endless, 0.01)
  with pytest.raises(ValueError, match="offsets must have at most 2 items, got 3"):
    sensitivity.sensitivity(evaluator, [chips.RandomChip(0)], 0.01, offsets=[0, 8, 16])


def test_bar_plot_and_json_of_a_report(evaluator, tmp_path):
  report = sensitivity.sensitivity(evaluator, [chips.RandomChip(1000)], 0.01, by="tensor")
  path = sensitivity_lib.plot(report, str(tmp_path / "s.png"))
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  record = json.loads(json.dumps(report.to_dict()))
  assert len(record["groups"]) == 6
  first = evaluation.Results.from_dict(record["groups"][0]["results"])
  assert first.errors == report.results[report.groups[0].name].errors
  assert first.metadata["share_of_weights"] == pytest.approx(
      report.groups[0].num_weights / evaluator.layout.num_weights)


def test_a_sensitivity_file_reads_back_to_its_counts_and_a_damaged_one_is_refused(evaluator):
  report = sensitivity.sensitivity(evaluator, [chips.RandomChip(1000), chips.RandomChip(1001)],
                                   0.05)
  record = json.loads(json.dumps(report.to_dict()))
  back = sensitivity.Sensitivity.from_dict(record, "s.json")
  assert [(g.name, g.tensors, g.num_weights) for g in back.groups] == [
      (g.name, g.tensors, g.num_weights) for g in report.groups]
  assert all(back.results[g.name].errors == report.results[g.name].errors for g in report.groups)
  assert (back.full.errors, back.condition, back.by) == (report.full.errors, 0.05, "layer")

  def renamed(r):
    r["groups"][1]["name"] = r["groups"][0]["name"]

  def other_test_set(r):
    r["groups"][0]["results"]["data"]["digest"] = "other"

  for edit, message in (
      (lambda r: r.update(format="tfbet-weight-noise/1"), "not a bin/sensitivity result"),
      (lambda r: r.update(by="row"), "by must be one of"),
      (lambda r: r["groups"][0].update(num_weights=r["groups"][0]["num_weights"] + 1),
       "do not add up to the model's num_weights"),
      (renamed, "names distinct"), (other_test_set, "another model or test set"),
      (lambda r: r["groups"].pop(), "do not add up")):
    broken = json.loads(json.dumps(record))
    edit(broken)
    with pytest.raises(ValueError, match=f"s.json: .*{message}"):
      sensitivity.Sensitivity.from_dict(broken, "s.json")


def test_sensitivity_binary_refuses_a_voltage_without_chip_files():
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  bad = subprocess.run(
      [sys.executable, os.path.join(REPO, "bin", "sensitivity"), "--model=m.h5",
       "--gin_file=data/mnist.gin", "--voltage=0.9"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "--voltage needs --chip_files" in bad.stderr


def test_sensitivity_plot_starts_at_the_clean_error_names_layers_and_states_its_scheme(
    tmp_path, monkeypatch):
  figures = helpers.capture_figures(monkeypatch)
  info = helpers.model_info("net", faulty=97, parameters=100)

  def results(errors):  # 1000 test examples, clean Err 10 %, 3 chips at p = 1 %
    return evaluation.Results(model=info, n=1000, data_digest="d", clean_errors=100,
                              condition_kind="rate",
                              errors={(f"c{i}", 0.01, 0): e for i, e in enumerate(errors)})
  groups = [sensitivity.Group("conv", ("conv/kernel",), (0,), 30),
            sensitivity.Group("dense", ("dense/kernel",), (1,), 67)]
  report = sensitivity.Sensitivity(
      condition=0.01, by="layer", groups=groups,
      results={"conv": results([104, 105, 106]), "dense": results([114, 116, 118])},
      full=results([124, 125, 126]))
  path = sensitivity_lib.plot(report, tmp_path / "s.png")
  assert os.path.getsize(path) > 0
  (ax,) = [a for a in figures[-1].axes if a.get_yticklabels()]
  # Bars in 10.4..11.8 % drawn from the clean Err (10 %), where the axis starts.
  assert ax.get_xlim()[0] == pytest.approx(10.0)
  lengths = sorted(round(bar.get_width(), 6) for bar in ax.patches)
  assert lengths == [0.5, 1.6]  # mean RErr - clean Err: 10.5 - 10, 11.6 - 10
  # Shares of the 97 weights in faulty memory: 30 / 97, 67 / 97.
  assert [t.get_text() for t in ax.get_yticklabels()] == [
      "conv (31 % of weights)", "dense (69 % of weights)"]
  assert ax.get_legend() is None and figures[-1].legends  # the legend is outside the bars
  assert helpers.footer(figures[-1]) == (
      "net: 8-bit per-tensor asymmetric unsigned rounding, 97.00 % of 100 parameters in faulty "
      "memory")
