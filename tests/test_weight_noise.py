"""L-infinity weight noise relative to each tensor's range (Fig. 9)."""
import itertools
import json

import numpy as np
import pytest

from tfbet import evaluation
from tfbet import quantize_configs
from tfbet import weight_noise
from tfbet.cli import weight_noise_lib
from tfbet.compat import keras


@pytest.fixture(scope="module")
def evaluator():
  """A random quantized MLP (zero biases) on random inputs labeled by its clean predictions."""
  keras.utils.set_random_seed(7)
  inputs = keras.Input((10,))
  hidden = keras.layers.Dense(24, activation="relu")(inputs)
  outputs = keras.layers.Dense(3)(hidden)
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")
  images = np.random.default_rng(2).normal(size=(300, 10)).astype(np.float32)
  labels = np.argmax(model(images).numpy(), axis=-1)
  return evaluation.Evaluator(model, [(images, labels)])


def test_noise_stays_within_the_relative_bound_and_is_undone(evaluator):
  layout = evaluator.layout
  before = [slot.variable.numpy().copy() for slot in layout.slots]
  widths = [float(w.max() - w.min()) for w in before]  # RQUANT: asymmetric range.
  assert weight_noise.tensor_widths(layout) == pytest.approx(widths)
  with weight_noise.perturbed(layout, 0.05, seed=3):
    during = [slot.variable.numpy().copy() for slot in layout.slots]
  for original, changed, width in zip(before, during, widths):
    delta = np.abs(changed - original)
    assert delta.max() <= 0.05 * width * (1 + 1e-6)
    if width > 0:
      assert delta.max() > 0.04 * width  # Uniform noise reaches close to its bound.
    else:
      np.testing.assert_array_equal(changed, original)  # Zero biases: range 0, no noise.
  for original, slot in zip(before, layout.slots):
    np.testing.assert_array_equal(slot.variable.numpy(), original)


def test_zero_magnitude_is_the_clean_model_and_seeds_repeat(evaluator):
  results = weight_noise.weight_noise(evaluator, [0.0, 0.2], [0, 1, 2])
  assert results.clean_errors == 0
  assert all(results.errors[(s, 0.0)] == 0 for s in (0, 1, 2))
  again = weight_noise.weight_noise(evaluator, [0.2], [1])
  assert again.errors[(1, 0.2)] == results.errors[(1, 0.2)]
  noisy = [results.errors[(s, 0.2)] for s in (0, 1, 2)]
  assert max(noisy) > 0  # 20 % of the range moves some decisions of a random net.
  row = results.summary()[1]
  assert row.mean == pytest.approx(np.mean(noisy) / 300)
  assert row.std == pytest.approx(np.std(np.array(noisy) / 300))
  assert "20" in weight_noise_lib.table(results)


def test_a_noise_file_reads_back_to_its_counts_and_a_damaged_one_is_refused(evaluator):
  results = weight_noise.weight_noise(evaluator, [0.01, 0.2], [0, 1])
  record = json.loads(json.dumps(results.to_dict()))
  back = weight_noise.NoiseResults.from_dict(record, "n.json")
  assert (back.errors, back.clean_errors, back.n) == (results.errors, results.clean_errors, 300)
  assert back.summary() == results.summary()
  for edit, message in (
      (lambda r: r.update(format="tfbet-sensitivity/1"), "not a bin/weight_noise result"),
      (lambda r: r["entries"][0].update(errors=301), r"entries\[0\].errors must be in"),
      (lambda r: r["entries"].append(dict(r["entries"][0])), "is repeated"),
      (lambda r: r["entries"][1].update(magnitude=-0.1), "magnitude"),
      (lambda r: r.update(entries=[]), "entries must not be empty")):
    broken = json.loads(json.dumps(record))
    edit(broken)
    with pytest.raises(ValueError, match=f"n.json: .*{message}"):
      weight_noise.NoiseResults.from_dict(broken, "n.json")


def test_bad_magnitudes_and_seeds_are_refused(evaluator):
  with pytest.raises(ValueError, match="magnitude"):
    weight_noise.weight_noise(evaluator, [-0.1], [0])
  with pytest.raises(ValueError, match="seeds"):
    weight_noise.weight_noise(evaluator, [0.1], [0, 0])
  with pytest.raises(ValueError, match="percent"):
    weight_noise_lib.parse_magnitudes(["-1"])
  assert weight_noise_lib.parse_magnitudes(["1", "2.5"]) == [0.01, 0.025]


def test_magnitudes_and_seeds_are_read_no_further_than_their_limits(evaluator, monkeypatch):
  monkeypatch.setattr(weight_noise.checks, "MAX_CHIPS", 2)
  monkeypatch.setattr(weight_noise.checks, "MAX_CONDITIONS", 2)
  with pytest.raises(ValueError, match="seeds must have at most 2 items, got more"):
    weight_noise.weight_noise(evaluator, [0.1], itertools.count())
  with pytest.raises(ValueError, match="magnitudes must have at most 2 items, got 3"):
    weight_noise.weight_noise(evaluator, [0.1, 0.2, 0.3], [0])


def test_weight_noise_plot_names_scheme_and_coverage(tmp_path, monkeypatch):
  from tests import helpers  # pylint: disable=g-import-not-at-top
  figures = helpers.capture_figures(monkeypatch)
  results = weight_noise.NoiseResults(
      model=helpers.model_info("net", faulty=3, parameters=4), n=10, data_digest="d",
      clean_errors=1, errors={(0, 0.01): 2, (1, 0.01): 3, (0, 0.05): 5, (1, 0.05): 6})
  weight_noise_lib.plot(results, str(tmp_path / "noise.png"))
  assert (tmp_path / "noise.png").stat().st_size > 0
  assert helpers.footer(figures[-1]) == (
      "net: 8-bit per-tensor asymmetric unsigned rounding, 75.00 % of 4 parameters in faulty "
      "memory")
