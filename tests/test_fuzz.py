"""Property-based fuzzing (hypothesis) of the ops and of every file reader.

Every reader meets arbitrary bytes, valid files with bytes mutated, and valid structures with
fields replaced by arbitrary values. The property is the project's rule: a reader either raises
a clear error (ValueError / TypeError naming the file or argument) or returns exactly what was
written -- never another exception (a crash: MemoryError, RecursionError, IndexError, ...),
never silently different content. The ops must equal the numpy reference of test_ops.py for any
valid argument and reject any invalid one with a clear error.

Bounded for CI: examples are derandomized (the same every run) and few per test; the whole file
takes about a minute on one core.
"""
import copy
import io
import json
import math
import pickle
import struct

import numpy as np
import pytest
import tensorflow as tf

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from tests import test_ops  # noqa: E402  (the independent numpy reference of the ops)
from tfbet import chips  # noqa: E402
from tfbet import evaluation  # noqa: E402
from tfbet import formats  # noqa: E402
from tfbet import memory  # noqa: E402
from tfbet import ops  # noqa: E402
from tfbet import quantize_configs  # noqa: E402
from tfbet.compat import keras  # noqa: E402

# Deterministic and bounded: the same examples in every run, no example database on disk.
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
CLEAR_ERRORS = (ValueError, TypeError)  # JSONDecodeError and UnicodeDecodeError are ValueErrors.

# Any JSON value, nested a little.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)


def _as_array(value):
  """``value`` as a numpy array; a ragged list becomes an object array (which np.savez pickles)."""
  try:
    return np.asarray(value)
  except ValueError:
    array = np.empty(len(value), dtype=object)
    array[:] = [_as_array(v) for v in value]
    return array


def _mutated(data, edits):
  """``data`` with each (position, byte) edit applied (positions wrap around)."""
  data = bytearray(data)
  for position, value in edits:
    data[position % len(data)] = value
  return bytes(data)


EDITS = st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=4)
# A truncation point, as a fraction of the length.
CUTS = st.floats(0, 1, exclude_max=True)

# --------------------------------------------------------------------------------------------
# Ops.


@FUZZ
@given(size=st.integers(0, 40), seed=st.integers(-2**63, 2**63 - 1), rate=st.floats(0, 1),
       precision=st.integers(1, 8), offset=st.integers(0, 2**40).map(lambda o: 8 * o))
def test_random_flip_mask_equals_the_reference_for_any_valid_arguments(size, seed, rate,
                                                                       precision, offset):
  mask = ops.random_flip_mask([size], seed, rate, precision=precision, offset=offset).numpy()
  np.testing.assert_array_equal(mask, test_ops.reference_flip(size, seed, rate, precision, offset))


@FUZZ
@given(size=st.integers(1, 30), seed=st.integers(0, 2**40), rates=st.tuples(st.floats(0, 1),
                                                                            st.floats(0, 1)),
       precision=st.integers(1, 8), offset=st.integers(0, 2**20).map(lambda o: 8 * o))
def test_asymmetric_masks_equal_the_reference_for_any_valid_arguments(size, seed, rates,
                                                                      precision, offset):
  rate_0to1, rate_1to0 = rates[0], rates[1] * (1 - rates[0])
  got = ops.asymmetric_masks([size], seed, rate_0to1, rate_1to0, precision=precision,
                             offset=offset)
  want = test_ops.reference_asymmetric(size, seed, rate_0to1, rate_1to0, precision, offset)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g.numpy(), w)


@FUZZ
@given(size=st.integers(1, 20), seed=st.integers(0, 2**40), shape=st.tuples(st.integers(1, 5),
                                                                            st.integers(1, 7)),
       map_seed=st.integers(0, 2**32 - 1), offset=st.integers(0, 2**30))
def test_profiled_masks_equal_the_reference_for_any_valid_map(size, seed, shape, map_seed,
                                                              offset):
  rng = np.random.default_rng(map_seed)
  p0t1 = rng.choice([0.0, 0.3, 1.0], size=shape)
  p1t0 = (1 - p0t1) * rng.choice([0.0, 0.5, 1.0], size=shape)
  got = ops.profiled_masks([size], seed, p0t1, p1t0, offset=offset)
  want = test_ops.reference_profiled(size, seed, p0t1, p1t0, 8, offset)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g.numpy(), w)


@FUZZ
@given(values=st.binary(min_size=0, max_size=32), masks=st.data())
def test_apply_bit_errors_equals_the_formula_for_any_bytes(values, masks):
  values = np.frombuffer(values, np.uint8)
  flip, set_, clear = (np.frombuffer(masks.draw(st.binary(min_size=len(values),
                                                          max_size=len(values))), np.uint8)
                       for _ in range(3))
  got = ops.apply_bit_errors(values, flip, set_, clear).numpy()
  np.testing.assert_array_equal(got, ((values ^ flip) | set_) & ~clear)


ANY_ARGUMENT = (st.integers(-2**80, 2**80) | st.floats(allow_nan=True, allow_infinity=True)
                | st.booleans() | st.none() | st.text(max_size=4)
                | st.lists(st.integers(-2**40, 2**40), max_size=3))


@FUZZ
@given(shape=ANY_ARGUMENT, seed=ANY_ARGUMENT, rate=ANY_ARGUMENT, precision=ANY_ARGUMENT,
       offset=ANY_ARGUMENT)
def test_the_ops_reject_any_invalid_argument_with_a_clear_error(shape, seed, rate, precision,
                                                               offset):
  if isinstance(shape, list):
    shape = [min(abs(d), 64) if isinstance(d, int) else d for d in shape]  # keep memory small
  try:
    mask = ops.random_flip_mask(shape, seed, rate, precision=precision, offset=offset)
  except CLEAR_ERRORS + (tf.errors.InvalidArgumentError,):
    return
  # Accepted: then every argument was valid and the mask is the reference one.
  size = int(np.prod(shape))
  np.testing.assert_array_equal(np.asarray(mask).reshape(-1),
                                test_ops.reference_flip(size, seed, rate, precision, offset))


# --------------------------------------------------------------------------------------------
# Chip files.


@pytest.fixture(scope="module")
def chip_bytes(tmp_path_factory):
  chip = chips.simulate_profiled_chip(4, 16, [0.8, 0.9], seed=3, name="fuzzed")
  path = tmp_path_factory.mktemp("chip") / "chip.npz"
  chip.save(str(path))
  return chip, path.read_bytes()


def _same_chip(a, b):
  return (a.name == b.name and a.conditions == b.conditions and a.rows == b.rows
          and a.cols == b.cols and all(a.rates(v) == b.rates(v) for v in a.conditions))


def _load_chip_or_clear_error(path, original=None):
  try:
    loaded = chips.ProfiledChip.load(str(path))
  except CLEAR_ERRORS as error:
    assert str(path) in str(error)  # names the file
    return None
  if original is not None:
    assert _same_chip(loaded, original), "a damaged chip file loaded as another chip"
  return loaded


@FUZZ
@given(content=st.binary(max_size=300))
def test_a_chip_file_of_arbitrary_bytes_is_a_clear_error(tmp_path, content):
  (tmp_path / "c.npz").write_bytes(content)
  _load_chip_or_clear_error(tmp_path / "c.npz")


@FUZZ
@given(edits=EDITS, cut=st.none() | CUTS)
def test_a_damaged_chip_file_loads_identically_or_is_a_clear_error(tmp_path, chip_bytes, edits,
                                                                    cut):
  chip, content = chip_bytes
  content = _mutated(content, edits)
  if cut is not None:
    content = content[:int(cut * len(content))]
  (tmp_path / "c.npz").write_bytes(content)
  _load_chip_or_clear_error(tmp_path / "c.npz", original=chip)


FIELD_VALUES = (st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=6)
                | st.lists(st.floats(allow_nan=True, width=32), max_size=6)
                | st.lists(st.lists(st.lists(st.floats(-1, 2, width=32), min_size=2, max_size=2),
                                    min_size=1, max_size=2), min_size=1, max_size=3))


@FUZZ
@given(key=st.sampled_from(chips.CHIP_FILE_KEYS), value=FIELD_VALUES)
def test_a_chip_file_with_any_field_replaced_is_valid_or_a_clear_error(tmp_path, chip_bytes, key,
                                                                       value):
  chip, content = chip_bytes
  with np.load(io.BytesIO(content)) as data:
    fields = {k: data[k] for k in data.files}
  fields[key] = _as_array(value)
  with open(tmp_path / "c.npz", "wb") as f:
    np.savez(f, **fields)
  loaded = _load_chip_or_clear_error(tmp_path / "c.npz")
  if loaded is not None:  # The replacement was valid: the chip keeps the file's invariants.
    assert np.all(np.diff(loaded.conditions) > 0)
    for voltage in loaded.conditions:
      rates = loaded.rates(voltage)
      assert all(0 <= rates[k] <= 1 for k in ("p", "p_0t1", "p_1t0"))


# --------------------------------------------------------------------------------------------
# Memory images.


@pytest.fixture(scope="module")
def image(tmp_path_factory):
  keras.utils.set_random_seed(0)
  inputs = keras.Input((3,))
  model = quantize_configs.quantize_model(
      keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4)(inputs))), "rquant")
  path = tmp_path_factory.mktemp("image") / "memory.npz"
  memory.export_image(model, str(path))
  return model, path.read_bytes(), memory.read_image(str(path))


def _read_image_or_clear_error(path, original=None):
  try:
    loaded = memory.read_image(str(path))
  except CLEAR_ERRORS as error:
    assert str(path) in str(error)
    return None
  if original is not None:
    np.testing.assert_array_equal(loaded["codes"], original["codes"])
    np.testing.assert_array_equal(loaded["ranges"], original["ranges"])
    assert loaded["layout"] == original["layout"] and loaded["scheme"] == original["scheme"]
  return loaded


@FUZZ
@given(content=st.binary(max_size=300))
def test_a_memory_image_of_arbitrary_bytes_is_a_clear_error(tmp_path, content):
  (tmp_path / "m.npz").write_bytes(content)
  _read_image_or_clear_error(tmp_path / "m.npz")


@FUZZ
@given(edits=EDITS, cut=st.none() | CUTS)
def test_a_damaged_memory_image_reads_identically_or_is_a_clear_error(tmp_path, image, edits,
                                                                      cut):
  _, content, original = image
  content = _mutated(content, edits)
  if cut is not None:
    content = content[:int(cut * len(content))]
  (tmp_path / "m.npz").write_bytes(content)
  _read_image_or_clear_error(tmp_path / "m.npz", original)


@FUZZ
@given(key=st.sampled_from(["codes", "ranges", "layout", "scheme", "format"]),
       value=FIELD_VALUES | JSON_VALUES.map(json.dumps))
def test_a_memory_image_with_any_field_replaced_imports_exactly_or_is_a_clear_error(
    tmp_path, image, key, value):
  model, content, _ = image
  with np.load(io.BytesIO(content)) as data:
    fields = {k: data[k] for k in data.files}
  fields[key] = _as_array(value)
  with open(tmp_path / "m.npz", "wb") as f:
    np.savez(f, **fields)
  try:
    memory.import_image(model, str(tmp_path / "m.npz"))
  except CLEAR_ERRORS as error:
    assert "m.npz" in str(error)
    return
  finally:
    memory.release_image(model)
  # Imported: the model's memory holds exactly the file's codes and ranges.
  codes, ranges = memory.memory_contents(model)
  np.testing.assert_array_equal(codes, np.asarray(fields["codes"]))
  np.testing.assert_array_equal(ranges, np.asarray(fields["ranges"], np.float32).reshape(-1, 2))


# --------------------------------------------------------------------------------------------
# Result files.


@pytest.fixture(scope="module")
def result_record():
  plan, _ = evaluation.make_plan([chips.RandomChip(1000), chips.RandomChip(1001)], [0.01, 0.1])
  results = evaluation.Results(
      model={"digest": "d", "name": "m"}, n=50, data_digest="x", clean_errors=3,
      condition_kind="rate", plan=plan,
      chips={f"random_{s}": {"kind": "random", "seed": s} for s in (1000, 1001)})
  for index, key in enumerate(results.planned()):
    results.add(*key, index)
  return results.to_dict()


def _paths(record, prefix=()):
  """Every (path, value) inside a JSON record."""
  yield prefix, record
  if isinstance(record, dict):
    for key, value in record.items():
      yield from _paths(value, prefix + (key,))
  elif isinstance(record, list):
    for index, value in enumerate(record):
      yield from _paths(value, prefix + (index,))


def _check_invariants(results):
  """What a result that loads must satisfy, whatever was edited."""
  assert all(0 <= e <= results.n for e in results.errors.values())
  assert 0 <= results.clean_errors <= results.n
  assert all(key[0] in results.chips for key in results.errors)
  planned = results.planned()
  if planned is not None:
    assert set(results.errors) <= set(planned)
  for row in results.summary():
    assert 0 <= row.mean <= 1 and 0 <= row.bound <= 1 and math.isfinite(row.std)
  again = evaluation.Results.from_dict(json.loads(json.dumps(results.to_dict())))
  assert again.same_counts(results)


@FUZZ
@given(choice=st.data(), value=JSON_VALUES)
def test_a_result_record_with_any_value_replaced_loads_consistently_or_is_a_clear_error(
    result_record, choice, value):
  record = copy.deepcopy(result_record)
  paths = [p for p, _ in _paths(record) if p]
  path = choice.draw(st.sampled_from(paths))
  parent = record
  for step in path[:-1]:
    parent = parent[step]
  parent[path[-1]] = value
  try:
    results = evaluation.Results.from_dict(record, source="fuzzed.json")
  except ValueError as error:
    assert "fuzzed.json" in str(error)
    return
  _check_invariants(results)


@FUZZ
@given(edits=EDITS, cut=st.none() | CUTS)
def test_a_damaged_result_file_loads_consistently_or_is_a_clear_error(tmp_path, result_record,
                                                                      edits, cut):
  content = _mutated(json.dumps(result_record, indent=1).encode(), edits)
  if cut is not None:
    content = content[:int(cut * len(content))]
  (tmp_path / "r.json").write_bytes(content)
  try:
    results = evaluation.Results.from_json(str(tmp_path / "r.json"))
  except ValueError as error:
    assert "r.json" in str(error)
    return
  _check_invariants(results)


@FUZZ
@given(shards=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3), st.integers(1, 3)),
                       min_size=1, max_size=3))
def test_merging_any_set_of_shards_is_complete_or_a_clear_error(shards):
  """Shards of up to three different evaluations (num_shards, shard_index, num_chips)."""
  parts = []
  for num_shards, index, num_chips in shards:
    chip_list = [chips.RandomChip(1000 + i) for i in range(num_chips)]
    try:
      plan, work = evaluation.make_plan(chip_list, [0.1], num_shards=num_shards,
                                        shard_index=index % num_shards)
    except ValueError:  # a shard with no chips
      continue
    part = evaluation.Results(model={"digest": "d"}, n=10, data_digest="x", clean_errors=0,
                              condition_kind="rate", plan=plan,
                              chips={c.name: c.describe() for c, _, _ in work})
    for key in part.planned():
      part.add(*key, 1)
    parts.append(part)
  if not parts:
    return
  try:
    merged = evaluation.merge(parts)
  except ValueError:
    return
  # Accepted: then it is exactly one complete evaluation.
  assert merged.missing() == []
  assert len(merged.errors) == len(merged.plan["chips"])


# --------------------------------------------------------------------------------------------
# Data files: IDX and CIFAR batches.


def _idx(array, type_code=0x08):
  return bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) \
      + array.astype(array.dtype.newbyteorder(">")).tobytes()


@FUZZ
@given(content=st.binary(max_size=200) | st.builds(
    lambda head, tail: bytes([0, 0]) + head + tail,
    st.binary(min_size=2, max_size=2), st.binary(max_size=40)))
def test_idx_bytes_parse_to_their_declared_shape_or_are_a_clear_error(content):
  try:
    array = formats.parse_idx(content, source="fuzzed.idx")
  except ValueError as error:
    assert "fuzzed.idx" in str(error)
    return
  ndim = content[3]
  dims = struct.unpack(f">{ndim}I", content[4:4 + 4 * ndim])
  assert array.shape == dims


@FUZZ
@given(edits=EDITS, cut=st.none() | CUTS)
def test_a_damaged_idx_file_is_a_clear_error_or_has_the_declared_shape(edits, cut):
  original = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  content = _mutated(_idx(original), edits)
  if cut is not None:
    content = content[:int(cut * len(content))]
  try:
    array = formats.parse_idx(content, source="fuzzed.idx")
  except ValueError as error:
    assert "fuzzed.idx" in str(error)
    return
  assert array.size * array.itemsize == len(content) - 4 - 4 * array.ndim


@FUZZ
@given(content=st.binary(max_size=7000), dataset=st.sampled_from(["cifar10", "cifar100"]))
def test_a_cifar_binary_batch_of_arbitrary_bytes_reads_or_is_a_clear_error(tmp_path, content,
                                                                            dataset):
  (tmp_path / "batch.bin").write_bytes(content)
  try:
    images, labels = formats.read_cifar_binary(str(tmp_path / "batch.bin"), dataset)
  except ValueError as error:
    assert "batch.bin" in str(error)
    return
  record = 3073 if dataset == "cifar10" else 3074
  assert images.shape == (len(content) // record, 32, 32, 3) and len(labels) == len(images)
  assert labels.min() >= 0 and labels.max() < (10 if dataset == "cifar10" else 100)


CIFAR_VALUES = (JSON_VALUES
                | st.builds(lambda n, dtype: np.zeros((n, 3072), dtype), st.integers(0, 3),
                            st.sampled_from([np.uint8, np.int64, np.float32]))
                | st.lists(st.integers(-5, 120), max_size=4).map(np.asarray))


@FUZZ
@given(batch=st.dictionaries(st.sampled_from([b"data", b"labels", b"fine_labels", "data", 7]),
                             CIFAR_VALUES, max_size=3) | JSON_VALUES,
       protocol=st.integers(2, pickle.HIGHEST_PROTOCOL), cut=st.none() | CUTS)
def test_a_cifar_python_batch_holding_anything_reads_or_is_a_clear_error(tmp_path, batch,
                                                                         protocol, cut):
  content = pickle.dumps(batch, protocol=protocol)
  if cut is not None:
    content = content[:int(cut * len(content))]
  (tmp_path / "data_batch_1").write_bytes(content)
  try:
    images, labels = formats.read_cifar_pickle(str(tmp_path / "data_batch_1"))
  except ValueError as error:
    assert "data_batch_1" in str(error)
    return
  assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
  assert len(labels) == len(images) and (labels.size == 0 or 0 <= labels.min() <= labels.max() < 10)
