"""Confidence, weight redundancy and bit position effects against numpy references."""
import numpy as np
import pytest

from tfbet import chips
from tfbet import diagnostics
from tfbet import evaluation
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet.cli import diagnose_lib
from tfbet.compat import keras


@pytest.fixture(scope="module")
def linear():
  """A quantized linear classifier (one Dense layer, RQUANT) and random inputs."""
  keras.utils.set_random_seed(11)
  inputs = keras.Input((8,))
  outputs = keras.layers.Dense(4)(inputs)
  model = quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")
  images = np.random.default_rng(4).normal(size=(64, 8)).astype(np.float32)
  return model, images


def test_confidence_is_the_largest_softmax_probability():
  assert diagnostics.confidences(np.array([[0.0, 0.0], [2.0, 0.0]])) == pytest.approx(
      [0.5, np.exp(2) / (np.exp(2) + 1)])
  assert diagnostics.confidences(np.array([[1000.0, 0.0, -5.0]])) == pytest.approx([1.0])


def test_redundancy_counts_weights_near_the_tensor_maximum(linear):
  model, _ = linear
  mem = memory.layout(model)
  kernel, bias = (slot.variable for slot in mem.slots)
  values = np.linspace(-1, 1, 32).reshape(8, 4).astype(np.float32)
  kernel.assign(values)
  bias.assign([0.0, 0.0, 0.0, 0.0])
  found = diagnostics.weight_redundancy(model, threshold=0.9)
  near = np.sum(np.abs(values) >= 0.9)
  assert found.per_tensor[0][1] == pytest.approx(near / 32)
  assert found.per_tensor[1][1] == 0.0  # All-zero bias: nothing near a maximum of 0.
  assert found.overall == pytest.approx(near / 36)


def test_bit_position_effects_match_a_numpy_forward_pass(linear):
  model, images = linear
  effects = diagnostics.bit_position_effects(model, images, share=0.25, seed=3)
  mem = memory.layout(model)
  codes, ranges = memory.memory_contents(mem)
  chosen = np.random.default_rng(3).choice(mem.num_weights, size=9, replace=False)
  assert [e.num_flipped for e in effects] == [9] * 8

  def forward(flat):
    kernel, bias = [np.asarray(quantization.dequantize(part, lo, hi, mem.scheme), np.float64)
                    for part, (lo, hi) in zip(mem.split(flat), ranges)]
    return images.astype(np.float64) @ kernel + bias

  clean = forward(codes)
  for effect in effects:
    flipped = codes.copy()
    flipped[chosen] ^= np.uint8(1 << effect.bit)
    changed = forward(flipped)
    expected = np.mean(np.linalg.norm(changed - clean, axis=1) / np.linalg.norm(clean, axis=1))
    assert effect.relative_logit_change == pytest.approx(expected, rel=1e-4)
  assert effects[7].relative_logit_change > 10 * effects[0].relative_logit_change


def test_confidence_report_holds_clean_and_chip_logits(linear):
  model, images = linear
  labels = np.argmax(model(images).numpy(), axis=-1)
  chip = chips.RandomChip(1000)
  report = diagnostics.confidence_report(model, images, labels, chip, 0.2)
  summary = report.summary()
  assert summary["clean"]["error"] == 0
  errors = evaluation.evaluate(model, [(images, labels)], [chip], [0.2], progress=None)
  assert summary["perturbed"]["error"] == errors.rerr(chip.name, 0.2)
  np.testing.assert_allclose(report.clean_logits, model(images).numpy(), rtol=1e-6)
  text = diagnose_lib.table(report, diagnostics.weight_redundancy(model),
                            diagnostics.bit_position_effects(model, images))
  assert "perturbed" in text and "bit" in text
