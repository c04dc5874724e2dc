"""Memory layout, chip loading and memory images of quantized models."""
import json
import zipfile

import numpy as np
import pytest

from tfbet import chips
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet.compat import keras

from tests.helpers import cnn_inputs
from tests.helpers import small_cnn


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
  x = cnn_inputs()
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


def _rename(entries, index, name):
  entries[index]["name"] = name


@pytest.mark.parametrize("edit, message", [
    # Every name differs, shapes equal: the image is of another model.
    (lambda e: [_rename(e, i, f"other/t{i}:0") for i in range(len(e))],
     r"tensor 0 is 'other/t0:0', the model's is 'quant_conv/kernel:0'$"),
    # Two tensors of one shape in the other order: their weights would be swapped.
    (lambda e: (_rename(e, 2, "quant_norm/beta:0"), _rename(e, 3, "quant_norm/gamma:0")),
     r"tensor 2 is 'quant_norm/beta:0', the model's is 'quant_norm/gamma:0'; the model has it "
     r"at position 3"),
    (lambda e: e[4].update(dtype="float16"),
     r"tensor 4 \('quant_depthwise/depthwise_kernel:0'\) has dtype 'float16', the model's "
     r"'float32'"),
])
def test_a_memory_image_whose_tensor_names_order_or_dtypes_differ_from_the_model_is_refused(
    qmodel, image_fields, tmp_path, edit, message):
  path = _damaged_image(image_fields, tmp_path, layout=_layout_edit(edit))
  memory.read_image(path)  # A consistent file: only the comparison with the model refuses it.
  codes_before, _ = memory.memory_contents(qmodel)
  with pytest.raises(ValueError, match="memory.npz.*field 'layout': " + message):
    memory.import_image(qmodel, path)
  np.testing.assert_array_equal(memory.memory_contents(qmodel)[0], codes_before)


def test_a_memory_image_without_dtypes_from_an_older_tfbet_still_imports_exactly(
    image_fields, tmp_path):
  assert [e["dtype"] for e in json.loads(str(image_fields["layout"]))] == ["float32"] * 8
  path = _damaged_image(image_fields, tmp_path,
                        layout=_layout_edit(lambda e: [entry.pop("dtype") for entry in e]))
  fresh = quantize_configs.quantize_model(small_cnn(seed=7), quantization.get_scheme("normal", 6))
  assert not np.array_equal(memory.memory_contents(fresh)[0], image_fields["codes"])
  memory.import_image(fresh, path)
  codes, ranges = memory.memory_contents(fresh)
  np.testing.assert_array_equal(codes, image_fields["codes"])
  np.testing.assert_array_equal(ranges, image_fields["ranges"])


def test_truncated_memory_image_gives_a_clear_error(qmodel, tmp_path):
  path = tmp_path / "memory.npz"
  memory.export_image(qmodel, str(path))
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(ValueError, match="cannot read memory image"):
    memory.read_image(str(path))


def test_masks_of_the_wrong_size_are_refused(qmodel):
  with pytest.raises(ValueError, match="flat array"):
    memory.load_masks(qmodel, flip=np.zeros([3], np.uint8))


@pytest.fixture(name="image_fields", scope="module")
def _image_fields(tmp_path_factory):
  """The fields of a memory image of a 6-bit NORMAL model (exported once)."""
  path = tmp_path_factory.mktemp("image") / "memory.npz"
  qmodel = quantize_configs.quantize_model(small_cnn(), quantization.get_scheme("normal", 6))
  memory.export_image(qmodel, str(path))
  with np.load(path) as data:
    return {key: data[key] for key in data.files}


def _damaged_image(fields, tmp_path, **changes):
  """A memory image with some fields replaced (None removes a field)."""
  fields = dict(fields)
  for key, value in changes.items():
    if value is None:
      del fields[key]
    else:
      fields[key] = value(fields[key]) if callable(value) else value
  path = tmp_path / "memory.npz"
  np.savez(path, **fields)
  return str(path)


def _layout_edit(edit):
  def change(text):
    entries = json.loads(str(text))
    edit(entries)
    return json.dumps(entries)
  return change


def _set(array, index, value):
  array = array.copy()
  array[index] = value
  return array


@pytest.mark.parametrize("changes, message", [
    (dict(ranges=lambda r: r[:-1]), r"'ranges' must be float32 \[\d+, 2\]"),
    (dict(ranges=lambda r: r.astype(np.float64)), "'ranges' must be float32"),
    (dict(ranges=lambda r: _set(r, (0, 0), np.nan)), "'ranges' row 0 .*finite"),
    (dict(ranges=lambda r: _set(r, (1, 1), np.inf)), "'ranges' row 1 .*finite"),
    (dict(ranges=lambda r: r[:, ::-1].copy()), "'ranges' row 0 .*q_min <= q_max"),
    (dict(ranges=lambda r: _set(r, (0, 0), r[0, 0] / 2)), "row 0 .*symmetric"),
    (dict(codes=lambda c: c.astype(np.int64) + 256), r"'codes' must be uint8"),
    (dict(codes=lambda c: c.astype(np.float32) * np.nan), r"'codes' must be uint8"),
    (dict(codes=lambda c: c[:-1]), r"'codes' must be uint8 \[\d+\]"),
    (dict(codes=lambda c: _set(c, 5, 64)), "'codes' byte 5 is 64, above the 6-bit codes"),
    (dict(layout="[{"), "'layout' is not valid JSON"),
    (dict(layout="[" * 100000 + "]" * 100000), "'layout' is not valid JSON"),
    (dict(layout='{"a": 1}'), "'layout' must be a list"),
    (dict(layout=_layout_edit(lambda e: e[0].pop("size"))), r"layout\[0\] must be an object"),
    (dict(layout=_layout_edit(lambda e: e[1].update(size=1))), r"layout\[1\].size is 1"),
    (dict(layout=_layout_edit(lambda e: e[0].update(shape=[-1]))), r"layout\[0\].shape"),
    (dict(layout=_layout_edit(lambda e: e[1].update(offset=0))), r"layout\[1\].offset is 0"),
    (dict(layout=_layout_edit(lambda e: e.pop())), r"'codes' must be uint8"),
    (dict(scheme='{"precision": 9}'), "'scheme' is not a quantization scheme.*precision"),
    (dict(scheme='{"colour": 1}'), "'scheme' is not a quantization scheme"),
    (dict(scheme='{"precision": 6, "per_tensor": 1}'), "'scheme' is not a quantization"),
    (dict(scheme="not json"), "'scheme' is not valid JSON"),
    (dict(scheme=np.arange(3)), "'scheme' must be a text scalar"),
    (dict(format="tfbet-memory-image/2"), "has format"),
    (dict(ranges=None), r"lacks \['ranges'\]"),
])
def test_damaged_memory_images_fail_naming_the_file_and_the_field(
    image_fields, tmp_path, changes, message):
  path = _damaged_image(image_fields, tmp_path, **changes)
  with pytest.raises(ValueError, match=message) as error:
    memory.read_image(path)
  assert "memory.npz" in str(error.value)


def test_global_ranges_that_differ_between_tensors_are_refused(tmp_path):
  qmodel = quantize_configs.quantize_model(small_cnn(), "global")
  path = tmp_path / "memory.npz"
  memory.export_image(qmodel, str(path))
  memory.read_image(str(path))  # Intact: one global range.
  with np.load(path) as data:
    fields = {key: data[key] for key in data.files}
  path = _damaged_image(fields, tmp_path, ranges=lambda r: _set(r, 1, r[1] * 2))
  with pytest.raises(ValueError, match="memory.npz.*'ranges' differs between tensors"):
    memory.read_image(path)


def test_a_memory_image_whose_header_claims_a_huge_array_is_refused_before_reading(tmp_path):
  path = tmp_path / "memory.npz"
  with zipfile.ZipFile(path, "w") as archive:
    with archive.open("codes.npy", "w") as member:
      np.lib.format.write_array_header_1_0(
          member, {"descr": "|u1", "fortran_order": False, "shape": (74 * 2 ** 30,)})
      member.write(b"\0" * 16)
  with pytest.raises(ValueError, match=r"memory.npz.*'codes.npy' declares shape \(79456894976,\)"):
    memory.read_image(str(path))


def _flips(qmodel):
  return np.concatenate([s.qvars["flip"].numpy().ravel() for s in memory.layout(qmodel).slots])


@pytest.mark.parametrize("rate", [1, 0.6])
def test_a_rate_above_one_half_is_refused_as_a_likely_percent(qmodel, rate):
  with pytest.raises(ValueError, match="looks like a percent.*allow_high_rate=True"):
    memory.load_chip(qmodel, chips.RandomChip(1), rate)
  assert not np.any(_flips(qmodel))


def test_a_high_rate_loads_when_the_caller_says_it_is_meant(qmodel):
  mem = memory.load_chip(qmodel, chips.RandomChip(1), 0.6, allow_high_rate=True)
  expected, _, _ = chips.RandomChip(1).masks(mem.num_weights, mem.precision, 0.6)
  np.testing.assert_array_equal(_flips(qmodel), expected)
  memory.clear_masks(qmodel)


def test_a_chip_loaded_after_the_first_trace_changes_the_outputs_and_clearing_restores_them(
    qmodel):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mem = memory.layout(qmodel)
  x = cnn_inputs()
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
