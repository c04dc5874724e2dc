"""Memory layout, chip loading and memory images of quantized models."""
import numpy as np
import pytest

from tfbet import chips
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet.compat import keras

from tests.test_quantize_configs import _inputs
from tests.test_quantize_configs import small_cnn


@pytest.fixture(name="qmodel")
def _qmodel():
  return quantize_configs.quantize_model(small_cnn(), quantization.get_scheme("normal", 6))


def test_layout_is_contiguous_and_covers_every_parameter(qmodel):
  mem = memory.layout(qmodel)
  assert mem.num_weights == sum(int(np.prod(v.shape)) for v in qmodel.trainable_weights)
  ends = [s.offset + s.size for s in mem.slots]
  assert [s.offset for s in mem.slots[1:]] == ends[:-1] and ends[-1] == mem.num_weights
  assert mem.precision == 6


def test_loading_a_chip_cuts_its_memory_wide_mask_into_the_tensors(qmodel):
  mem = memory.layout(qmodel)
  chip = chips.RandomChip(1000)
  memory.load_chip(mem, chip, 0.1)
  flip = chip.masks(mem.num_weights, 6, 0.1)[0]
  got = np.concatenate([s.qvars["flip"].numpy().ravel() for s in mem.slots])
  np.testing.assert_array_equal(got, flip)
  assert got.max() < 2 ** 6  # bits >= m are never flipped
  # The in-graph per-tensor computation used in training gives the same masks.
  memory.clear_masks(mem)
  memory.assign_random_flips(mem, 1000, 0.1)
  got = np.concatenate([s.qvars["flip"].numpy().ravel() for s in mem.slots])
  np.testing.assert_array_equal(got, flip)
  memory.clear_masks(mem)
  assert all(not s.qvars["flip"].numpy().any() for s in mem.slots)


def test_global_range_is_the_range_of_all_quantized_weights():
  qmodel = quantize_configs.quantize_model(small_cnn(), "global")
  memory.update_global_range(qmodel)
  mem = memory.layout(qmodel)
  q_max = max(np.abs(s.variable.numpy()).max() for s in mem.slots)
  for slot in mem.slots:
    np.testing.assert_allclose(slot.qvars["range"].numpy(), [-q_max, q_max], rtol=1e-6)


def test_memory_image_round_trip_reproduces_the_model_bit_exactly(qmodel, tmp_path):
  path = str(tmp_path / "memory.npz")
  memory.export_image(qmodel, path)
  x = _inputs()
  expected = qmodel(x).numpy()
  codes, ranges = memory.memory_contents(qmodel)
  fresh = quantize_configs.quantize_model(small_cnn(seed=7), quantization.get_scheme("normal", 6))
  assert not np.array_equal(fresh(x).numpy(), expected)
  memory.import_image(fresh, path)
  np.testing.assert_array_equal(fresh(x).numpy(), expected)
  new_codes, new_ranges = memory.memory_contents(fresh)
  np.testing.assert_array_equal(new_codes, codes)
  np.testing.assert_array_equal(new_ranges, ranges)
  image = memory.read_image(path)
  assert image["codes"].dtype == np.uint8 and image["codes"].shape == (codes.size,)
  assert [e["size"] for e in image["layout"]] == [s.size for s in memory.layout(fresh).slots]
  memory.release_image(fresh)


def test_memory_image_of_another_architecture_is_refused(qmodel, tmp_path):
  path = str(tmp_path / "memory.npz")
  memory.export_image(qmodel, path)
  inputs = keras.Input((4,))
  other = quantize_configs.quantize_model(
      keras.Model(inputs, keras.layers.Dense(2)(inputs)), quantization.get_scheme("normal", 6))
  with pytest.raises(ValueError, match="layout"):
    memory.import_image(other, path)


def test_truncated_memory_image_gives_a_clear_error(qmodel, tmp_path):
  path = tmp_path / "memory.npz"
  memory.export_image(qmodel, str(path))
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(ValueError, match="cannot read memory image"):
    memory.read_image(str(path))


def test_masks_of_the_wrong_size_are_refused(qmodel):
  with pytest.raises(ValueError, match="flat array"):
    memory.load_masks(qmodel, flip=np.zeros([3], np.uint8))


def test_a_chip_loaded_after_the_first_trace_changes_the_outputs_and_clearing_restores_them(
    qmodel):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mem = memory.layout(qmodel)
  x = _inputs()
  forward = tf.function(lambda inputs: qmodel(inputs, training=False))
  clean = forward(x).numpy()  # traced here, with no masks loaded
  assert not any(bool(s.qvars["errors"].numpy()) for s in mem.slots)
  memory.load_chip(mem, chips.RandomChip(3), 0.05)
  assert all(bool(s.qvars["errors"].numpy()) for s in mem.slots)
  perturbed = forward(x).numpy()
  assert np.abs(perturbed - clean).max() > 1e-3
  # The same perturbed output as a model traced with the chip already loaded.
  np.testing.assert_array_equal(perturbed, qmodel(x, training=False).numpy())
  memory.clear_masks(mem)
  assert not any(bool(s.qvars["errors"].numpy()) for s in mem.slots)
  np.testing.assert_array_equal(forward(x).numpy(), clean)
  # In-graph loading (training) raises the flags too.
  tf.function(lambda: memory.assign_random_flips(mem, 3, 0.05))()
  np.testing.assert_array_equal(forward(x).numpy(), perturbed)


def test_loading_all_zero_masks_leaves_the_flags_down(qmodel):
  mem = memory.layout(qmodel)
  zeros = np.zeros(mem.num_weights, np.uint8)
  memory.load_masks(mem, zeros, zeros, zeros)
  assert not any(bool(s.qvars["errors"].numpy()) for s in mem.slots)
