"""Non-trainable state (BatchNormalization moving statistics) in faulty memory: faulty_state.

Off by default (the paper keeps the statistics reliable, App. G.1); with ``faulty_state=True``
they are quantized per tensor with their own masks, so a chip perturbs them at inference.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from tfbet import chips
from tfbet import data as data_lib
from tfbet import evaluation
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import safe_loading
from tfbet.compat import keras
from tfbet.compat import tfmot

L = keras.layers
P = 0.05  # bit error rate of the chips below


def _bn_model(seed=0):
  """Dense -> BatchNormalization -> Dense with random weights and statistics (no constants)."""
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((6,))
  x = L.BatchNormalization(name="bn")(L.Dense(4, name="d1")(inputs))
  model = keras.Model(inputs, L.Dense(3, name="d2")(x))
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    weight.assign(rng.uniform(0.2, 1.5, size=weight.shape).astype(np.float32))
  return model


def _inputs(n=64, seed=1):
  return np.random.default_rng(seed).normal(size=(n, 6)).astype(np.float32)


def _slot(mem, name):
  return next(s for s in mem.slots if name in s.name)


def _rquant_reference(w, flip):
  """8-bit RQUANT codes of ``w`` (Eq. 3, 4), XOR ``flip``, dequantized; numpy, float64."""
  w = w.astype(np.float64)
  q_min, q_max = w.min(), w.max()
  s = ((w - q_min) / (q_max - q_min) * 2.0 - 1.0) * 127
  codes = (np.clip(np.sign(s) * np.floor(np.abs(s) + 0.5), -127, 127) + 127).astype(np.uint8)
  r = (codes ^ flip).astype(np.float64) - 127
  return ((r / 127 + 1.0) / 2.0 * (q_max - q_min) + q_min).astype(np.float32)


def test_faulty_state_puts_the_moving_statistics_into_memory_and_the_coverage_counts_them():
  model = _bn_model()
  # Dense 6*4+4, BN gamma+beta 8, moving mean and variance 8, Dense 4*3+3.
  default = memory.coverage(quantize_configs.quantize_model(model))
  assert (default.faulty, default.trainable, default.parameters) == (51, 51, 59)
  qmodel = quantize_configs.quantize_model(model, faulty_state=True)
  mem = memory.layout(qmodel)
  names = [s.name.split("/")[-1] for s in mem.slots]
  assert names == ["kernel:0", "bias:0", "gamma:0", "beta:0", "moving_mean:0",
                   "moving_variance:0", "kernel:0", "bias:0"]
  cov = memory.coverage(qmodel)
  assert (cov.faulty, cov.trainable, cov.parameters, cov.share) == (59, 51, 59, 1.0)
  # The statistics stay out of training.
  assert len(qmodel.trainable_weights) == 6
  assert quantize_configs.has_faulty_state(qmodel)


def test_a_chip_changes_the_outputs_through_the_statistics_alone():
  qmodel = quantize_configs.quantize_model(_bn_model(), faulty_state=True)
  mem = memory.layout(qmodel)
  x = _inputs()
  clean = qmodel(x, training=False).numpy()
  flip = np.zeros(mem.num_weights, np.uint8)
  for name in ("moving_mean", "moving_variance"):
    slot = _slot(mem, name)
    flip[slot.offset:slot.offset + slot.size] = 0x40
  memory.load_masks(mem, flip=flip)
  perturbed = qmodel(x, training=False).numpy()
  assert not np.array_equal(perturbed, clean)
  # Training mode normalizes with batch statistics: the faulty statistics are not read.
  memory.clear_masks(mem)
  trained_clean = qmodel(x, training=True).numpy()
  memory.load_masks(mem, flip=flip)
  np.testing.assert_array_equal(qmodel(x, training=True).numpy(), trained_clean)


def test_training_mode_updates_the_reliable_statistics():
  model = _bn_model()
  qmodel = quantize_configs.quantize_model(model, faulty_state=True)
  mean = _slot(memory.layout(qmodel), "moving_mean").variable
  before = mean.numpy().copy()
  x = _inputs()
  qmodel(x, training=True)
  momentum = 0.99  # BatchNormalization's default
  batch_mean = qmodel.get_layer("quant_d1")(x, training=True).numpy().astype(np.float64).mean(0)
  np.testing.assert_allclose(mean.numpy(), before * momentum + batch_mean * (1 - momentum),
                             rtol=1e-5)
  # And the layout is unchanged by the training-mode call.
  assert [s.name for s in memory.layout(qmodel).slots][4:6] == [
      "quant_bn/moving_mean:0", "quant_bn/moving_variance:0"]


def test_the_evaluated_error_equals_a_numpy_reference_of_flipping_the_statistics_codes():
  model = _bn_model()
  qmodel = quantize_configs.quantize_model(model, faulty_state=True)
  mem = memory.layout(qmodel)
  x = _inputs(200)
  labels = np.argmax(model(x, training=False).numpy() + np.random.default_rng(3).normal(
      0, 0.3, size=(200, 3)), -1)
  dataset = [(x[i:i + 50], labels[i:i + 50]) for i in range(0, 200, 50)]
  evaluator = evaluation.Evaluator(qmodel, dataset)
  chip = chips.RandomChip(7)
  errors = evaluator.chip_errors(chip, P)

  flip, set_mask, clear_mask = chip.masks(mem.num_weights, 8, P)
  assert not np.any(set_mask) and not np.any(clear_mask)
  reference = keras.models.clone_model(model)
  for weight, original in zip(reference.weights, model.weights):
    slot = next(s for s in mem.slots if s.name.split("/")[-1] == original.name.split("/")[-1]
                and s.shape == tuple(original.shape) and
                s.name.split("/")[0] == "quant_" + original.name.split("/")[0])
    part = flip[slot.offset:slot.offset + slot.size].reshape(slot.shape)
    weight.assign(_rquant_reference(original.numpy(), part))
  state = slice(_slot(mem, "moving_mean").offset, _slot(mem, "moving_variance").offset + 4)
  assert np.any(flip[state])  # the chip really hits the statistics
  predictions = np.argmax(reference(x, training=False).numpy(), -1)
  assert errors == int(np.sum(predictions != labels))
  np.testing.assert_allclose(qmodel(x, training=False).numpy(),
                             reference(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def _tfmot_quantize(model, scheme):
  """The path quantize_model took before (tfmot's quantize_apply, QuantizeWrapperV2)."""
  tfmot_keras = tfmot.quantization.keras

  class NoTransform:
    def apply(self, model, layer_quantize_map):
      return model, layer_quantize_map

  class NoRegistry:
    def supports(self, layer):
      return False

    def get_quantize_config(self, layer):
      return None

  class Scheme(tfmot_keras.QuantizeScheme):
    def get_layout_transformer(self):
      return NoTransform()

    def get_quantize_registry(self):
      return NoRegistry()

  def annotate(layer):
    clone = layer.__class__.from_config(layer.get_config())
    attrs, _ = quantize_configs.quantizable_attributes(layer)
    if not attrs:
      return clone
    return tfmot_keras.quantize_annotate_layer(
        clone, quantize_configs.BitErrorQuantizeConfig(attrs, scheme))

  with quantize_configs.quantize_scope():
    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    return tfmot_keras.quantize_apply(annotated, scheme=Scheme())


def test_off_by_default_the_model_computes_bit_identically_to_the_tfmot_path():
  model = _bn_model()
  scheme = quantization.get_scheme("rquant")
  ours = quantize_configs.quantize_model(model, scheme)
  theirs = _tfmot_quantize(model, scheme)
  assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
  # (Variable names differ: tfmot's path created them under "quantize_annotate".)
  assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
  for a, b in zip(ours.get_weights(), theirs.get_weights()):
    np.testing.assert_array_equal(a, b)
  x = _inputs()
  for qmodel in (ours, theirs):
    memory.load_chip(qmodel, chips.RandomChip(3), P)
  np.testing.assert_array_equal(ours(x, training=False).numpy(),
                                theirs(x, training=False).numpy())
  np.testing.assert_array_equal(memory.memory_contents(ours)[0],
                                memory.memory_contents(theirs)[0])


def test_with_faulty_state_keeps_a_trained_models_codes_and_adds_its_statistics():
  qmodel = quantize_configs.quantize_model(_bn_model(), "normal")
  converted = quantize_configs.with_faulty_state(qmodel)
  mem, new = memory.layout(qmodel), memory.layout(converted)
  assert new.scheme == mem.scheme
  assert [s.name for s in new.slots] == [
      s.name for s in mem.slots][:4] + ["quant_bn/moving_mean:0", "quant_bn/moving_variance:0"] + [
          s.name for s in mem.slots][4:]
  codes, new_codes = memory.memory_contents(mem)[0], memory.memory_contents(new)[0]
  np.testing.assert_array_equal(new_codes[:36], codes[:36])
  np.testing.assert_array_equal(new_codes[44:], codes[36:])
  with pytest.raises(ValueError, match="already keeps its state"):
    quantize_configs.with_faulty_state(converted)


def test_faulty_state_with_a_global_range_is_refused():
  with pytest.raises(ValueError, match="per-tensor scheme"):
    quantize_configs.quantize_model(_bn_model(), "global", faulty_state=True)


def test_a_model_with_faulty_state_round_trips_through_hdf5(tmp_path):
  qmodel = quantize_configs.quantize_model(_bn_model(), faulty_state=True)
  x = _inputs()
  qmodel(x, training=False)  # after a call the layer holds tensors, not its variables
  path = str(tmp_path / "model.h5")
  with quantize_configs.quantize_scope():
    qmodel.save(path)
  loaded = safe_loading.load_model(path)
  assert ([s.name for s in memory.layout(loaded).slots]
          == [s.name for s in memory.layout(qmodel).slots])
  for qm in (qmodel, loaded):
    memory.load_chip(qm, chips.RandomChip(5), P)
  np.testing.assert_array_equal(loaded(x, training=False).numpy(),
                                qmodel(x, training=False).numpy())


def test_a_model_file_written_with_tfmots_wrapper_still_loads_bit_identically(tmp_path):
  qmodel = _tfmot_quantize(_bn_model(), quantization.get_scheme("rquant"))
  path = str(tmp_path / "old.h5")
  with quantize_configs.quantize_scope():
    qmodel.save(path)
  loaded = safe_loading.load_model(path)
  x = _inputs()
  for qm in (qmodel, loaded):
    memory.load_chip(qm, chips.RandomChip(5), P)
  np.testing.assert_array_equal(loaded(x, training=False).numpy(),
                                qmodel(x, training=False).numpy())


def test_bin_eval_faulty_state_measures_the_statistics_like_the_python_call(tmp_path, real_mnist):
  del real_mnist  # skips without real MNIST
  keras.utils.set_random_seed(1)
  inputs = keras.Input((28, 28, 1))
  x = L.BatchNormalization()(L.Conv2D(4, 3, strides=2, activation="relu")(inputs))
  model = keras.Model(inputs, L.Dense(10)(L.Flatten()(x)), name="users_float")
  model.layers[2].moving_variance.assign([0.5, 2.0, 1.0, 3.0])
  path = str(tmp_path / "float_model.h5")
  model.save(path)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  output = str(tmp_path / "state.json")
  process = subprocess.run(
      [sys.executable, os.path.join(repo, "bin", "eval"), f"--model={path}",
       "--gin_file=data/mnist.gin", "--test_limit=100", "--rates=5", "--num_chips=2",
       "--scheme=rquant", "--nowhiten", "--faulty_state", f"--output={output}"],
      cwd=repo, env=dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2",
                         PYTHONPATH=repo),
      capture_output=True, text=True, timeout=600)
  assert process.returncode == 0, process.stdout + process.stderr
  # Conv 40, BN gamma+beta 8 and moving statistics 8, Dense 6770: all in faulty memory.
  assert "6826 of 6826 parameters (100.00 %) in faulty memory" in process.stdout
  results = evaluation.Results.from_json(output)
  assert results.model["coverage"]["faulty_parameters"] == 6826
  assert results.metadata["faulty_state"] is True
  data = data_lib.load_data(name="mnist", test_limit=100, whiten=False)
  qmodel = quantize_configs.quantize_model(model, "rquant", faulty_state=True)
  reference = evaluation.Evaluator(qmodel, data.test_dataset()).run(
      [chips.RandomChip(s) for s in chips.default_chip_seeds(2)], [0.05], progress=None,
      allow_high_rate=True)
  assert results.same_counts(reference)
