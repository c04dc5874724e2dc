"""Tests of the compiled bit error ops against an independent numpy reference and statistics.

The reference below re-implements Philox4x32-10 (checked against the Random123 known-answer
vectors) and the per-byte uniform construction documented in custom_ops/bit_errors.h; the ops
must agree with it bit for bit.
"""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfbet import ops

# --------------------------------------------------------------------------------------------
# Independent numpy reference.

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, key):
  """Philox4x32-10 (Salmon et al., 2011) on arrays: counter 4 x n words, key 2 words."""
  c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
  k0, k1 = np.uint64(key[0]), np.uint64(key[1])
  for round_index in range(10):
    if round_index:
      k0 = (k0 + np.uint64(0x9E3779B9)) & _MASK32
      k1 = (k1 + np.uint64(0xBB67AE85)) & _MASK32
    product0 = np.uint64(0xD2511F53) * c0
    product1 = np.uint64(0xCD9E8D57) * c2
    c0, c1, c2, c3 = ((product1 >> np.uint64(32)) ^ c1 ^ k0, product1 & _MASK32,
                      (product0 >> np.uint64(32)) ^ c3 ^ k1, product0 & _MASK32)
  return [c.astype(np.uint32) for c in (c0, c1, c2, c3)]


def reference_uniforms(seed, first_address, count):
  """u(seed, a) for a = first_address .. first_address + count - 1 (float64)."""
  first_group = first_address // 8
  last_group = (first_address + count - 1) // 8
  groups = np.arange(first_group, last_group + 1, dtype=np.uint64)
  seed_bits = seed % 2**64
  key = (seed_bits & 0xFFFFFFFF, seed_bits >> 32)

  def block(counters, substream):
    zeros = np.zeros_like(counters)
    return philox4x32_10(
        [counters & _MASK32, counters >> np.uint64(32), zeros + substream, zeros], key)

  # 16 filter bits per group: half (g % 2) of word (g // 2) % 4 of block (g // 8, 0).
  filter_block = block(groups >> np.uint64(3), 0)
  word_index = ((groups >> np.uint64(1)) & np.uint64(3)).astype(np.int64)
  filter_word = np.choose(word_index, filter_block).astype(np.uint64)
  shift = (groups & np.uint64(1)) * np.uint64(16)
  filter_bits = (filter_word >> shift) & np.uint64(0xFFFF)
  second, third = block(groups, 1), block(groups, 2)
  bits45 = (filter_bits << np.uint64(29)) | (second[0].astype(np.uint64) >> np.uint64(3))
  u_min_source = (bits45 + np.uint64(1)).astype(np.float64) * 2.0**-45
  s = np.sqrt(np.sqrt(np.sqrt(1.0 - u_min_source)))
  s2 = s * s
  s4 = s2 * s2
  minimum = u_min_source / (((1.0 + s) * (1.0 + s2)) * (1.0 + s4))
  position = (second[0] & np.uint32(7)).astype(np.int64)
  words = [second[1], second[2], second[3], third[0], third[1], third[2], third[3]]
  v = np.stack([(w.astype(np.float64) + 1.0) * 2.0**-32 for w in words], axis=1)  # n x 7
  uniforms = np.empty((groups.size, 8))
  for b in range(8):
    v_index = np.where(b > position, b - 1, b).clip(0, 6)
    above = np.minimum(1.0, minimum + (1.0 - minimum) * v[np.arange(groups.size), v_index])
    uniforms[:, b] = np.where(position == b, minimum, above)
  flat = uniforms.reshape(-1)
  start = first_address - 8 * first_group
  return flat[start:start + count]


def pack(bits, precision):
  """Bytes from a (n, 8) boolean array of bits (bit 0 first), keeping the low `precision`."""
  weights = (1 << np.arange(8)) * (np.arange(8) < precision)
  return (bits.astype(np.int64) * weights).sum(axis=1).astype(np.uint8)


def reference_flip(size, seed, rate, precision=8, offset=0):
  u = reference_uniforms(seed, offset, 8 * size).reshape(size, 8)
  return pack(u <= rate, precision)


def reference_asymmetric(size, seed, rate_0to1, rate_1to0, precision=8, offset=0):
  u = reference_uniforms(seed, offset, 8 * size).reshape(size, 8)
  set_bits = u <= rate_0to1
  clear_bits = ~set_bits & (u > 1.0 - rate_1to0)
  return pack(set_bits, precision), pack(clear_bits, precision)


def reference_profiled(size, seed, p0t1, p1t0, precision=8, offset=0):
  u = reference_uniforms(seed, offset, 8 * size)
  cells = (offset + np.arange(8 * size)) % p0t1.size
  to_one = p0t1.reshape(-1).astype(np.float64)[cells]
  to_zero = p1t0.reshape(-1).astype(np.float64)[cells]
  set_bits = u <= to_one
  clear_bits = ~set_bits & (u > 1.0 - to_zero)
  return (pack(set_bits.reshape(size, 8), precision),
          pack(clear_bits.reshape(size, 8), precision))


def bit_counts(mask):
  """Number of set bits per bit position 0..7 of a uint8 array."""
  bits = np.unpackbits(np.asarray(mask).reshape(-1, 1), axis=1, bitorder="little")
  return bits.sum(axis=0)


# --------------------------------------------------------------------------------------------
# The reference itself.


@pytest.mark.parametrize("counter, key, expected", [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_reference_philox_matches_random123_known_answers(counter, key, expected):
  words = philox4x32_10([np.array([c], dtype=np.uint64) for c in counter], key)
  assert [int(w[0]) for w in words] == list(expected)


def test_reference_group_minimum_has_the_law_of_a_minimum_of_eight_uniforms():
  u = reference_uniforms(seed=11, first_address=0, count=8 * 40000).reshape(-1, 8)
  minimum = u.min(axis=1)
  for x in (0.01, 0.05, 0.2):
    expected = 1 - (1 - x)**8
    assert abs(np.mean(minimum <= x) - expected) < 5 * np.sqrt(expected * (1 - expected) / 40000)


# --------------------------------------------------------------------------------------------
# Bit-exact agreement with the reference.


@pytest.mark.parametrize("seed, rate, precision, offset", [
    (0, 0.01, 8, 0),
    (12345, 0.3, 8, 8 * 1000),
    (-7, 0.05, 4, 8 * (2**32 - 100)),  # groups cross 2^32: the high counter word is used
    (2**62 + 3, 0.9, 6, 64),
    (99, 1e-3, 2, 0),
])
def test_random_flip_mask_matches_numpy_reference_bit_exactly(seed, rate, precision, offset):
  size = 3000
  mask = ops.random_flip_mask([size], seed, rate, precision=precision, offset=offset).numpy()
  np.testing.assert_array_equal(mask, reference_flip(size, seed, rate, precision, offset))


def test_asymmetric_masks_match_numpy_reference_bit_exactly():
  size = 3000
  set_mask, clear_mask = ops.asymmetric_masks([size], 5, 0.07, 0.2, precision=7, offset=80)
  want_set, want_clear = reference_asymmetric(size, 5, 0.07, 0.2, precision=7, offset=80)
  np.testing.assert_array_equal(set_mask.numpy(), want_set)
  np.testing.assert_array_equal(clear_mask.numpy(), want_clear)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 3, 1237])
def test_profiled_masks_match_numpy_reference_bit_exactly(dtype, offset):
  rng = np.random.default_rng(0)
  raw = rng.uniform(size=(2, 13, 17))
  p0t1 = np.where(raw[0] < 0.3, raw[1] * 0.5, 0.0).astype(dtype)
  p1t0 = np.where(raw[0] > 0.8, raw[1] * 0.4, 0.0).astype(dtype)
  p0t1[0, :3] = 1.0  # persistent 0-to-1 faults
  p1t0[5, 2] = 1.0
  size = 2500
  set_mask, clear_mask = ops.profiled_masks([size], 21, p0t1, p1t0, precision=8, offset=offset)
  want_set, want_clear = reference_profiled(size, 21, p0t1, p1t0, 8, offset)
  np.testing.assert_array_equal(set_mask.numpy(), want_set)
  np.testing.assert_array_equal(clear_mask.numpy(), want_clear)


def test_a_bit_whose_uniform_equals_the_rate_is_faulty_and_just_below_it_is_not():
  # The rate sits exactly on a group minimum, where the fast-path threshold on U is tightest.
  size = 2000
  uniforms = reference_uniforms(seed=404, first_address=0, count=8 * size).reshape(size, 8)
  for element in (3, 777, 1999):
    rate = uniforms[element].min()
    mask = ops.random_flip_mask([size], 404, rate).numpy()
    np.testing.assert_array_equal(mask, pack(uniforms <= rate, 8))
    assert mask[element] & (1 << int(np.argmin(uniforms[element])))
    below = np.nextafter(rate, 0.0)
    mask = ops.random_flip_mask([size], 404, below).numpy()
    assert not mask[element] & (1 << int(np.argmin(uniforms[element])))
    np.testing.assert_array_equal(mask, pack(uniforms <= below, 8))


# --------------------------------------------------------------------------------------------
# Statistics.


@pytest.mark.parametrize("rate, size", [(1e-4, 2_000_000), (1e-2, 400_000), (0.1, 200_000),
                                        (0.5, 200_000)])
def test_empirical_rate_per_bit_position_is_within_binomial_bounds(rate, size):
  counts = bit_counts(ops.random_flip_mask([size], 2024, rate))
  expected = size * rate
  sigma = np.sqrt(size * rate * (1 - rate))
  assert np.all(np.abs(counts - expected) <= 5 * sigma), (counts, expected, sigma)


@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_faulty_bits_per_byte_follow_the_binomial_distribution(rate):
  size = 200_000
  mask = ops.random_flip_mask([size], 8, rate).numpy()
  per_byte = np.unpackbits(mask.reshape(-1, 1), axis=1).sum(axis=1)
  observed = np.bincount(per_byte, minlength=9)
  k = np.arange(9)
  comb = np.array([1, 8, 28, 56, 70, 56, 28, 8, 1])
  expected = size * comb * rate**k * (1 - rate)**(8 - k)
  keep = expected > 20
  chi2 = np.sum((observed[keep] - expected[keep])**2 / expected[keep])
  # chi-square with <= 8 degrees of freedom: 40 is far beyond its 99.999 % quantile (~37).
  assert chi2 < 40, (observed, expected)


def test_neighbouring_bits_are_uncorrelated():
  size = 200_000
  rate = 0.2
  mask = ops.random_flip_mask([size], 77, rate).numpy()
  bits = np.unpackbits(mask.reshape(-1, 1), axis=1, bitorder="little").reshape(-1)
  bits = bits.astype(np.float64)
  bound = 5 / np.sqrt(bits.size)
  for lag in (1, 2, 7, 8, 9):  # within a byte, and across the byte (group) boundary
    correlation = np.corrcoef(bits[:-lag], bits[lag:])[0, 1]
    assert abs(correlation) < bound, (lag, correlation)


def test_bits_at_or_above_precision_are_never_set():
  for precision in range(1, 9):
    allowed = (1 << precision) - 1
    for rate in (0.3, 0.999, 1.0):
      mask = ops.random_flip_mask([4000], 3, rate, precision=precision).numpy()
      assert not np.any(mask & ~np.uint8(allowed))
    set_mask, clear_mask = ops.asymmetric_masks([4000], 3, 0.5, 0.5, precision=precision)
    assert not np.any(set_mask.numpy() & ~np.uint8(allowed))
    assert not np.any(clear_mask.numpy() & ~np.uint8(allowed))


def test_rate_zero_gives_zero_mask_and_rate_one_sets_all_precision_bits():
  for precision in (1, 5, 8):
    zero = ops.random_flip_mask([10000], 4, 0.0, precision=precision).numpy()
    full = ops.random_flip_mask([10000], 4, 1.0, precision=precision).numpy()
    assert not np.any(zero)
    assert np.all(full == (1 << precision) - 1)
  set_mask, clear_mask = ops.asymmetric_masks([5000], 4, 0.0, 1.0)
  assert not np.any(set_mask.numpy()) and np.all(clear_mask.numpy() == 255)
  set_mask, clear_mask = ops.asymmetric_masks([5000], 4, 1.0, 0.0)
  assert np.all(set_mask.numpy() == 255) and not np.any(clear_mask.numpy())


def test_flip_masks_are_nested_across_rates():
  rates = [0.0, 1e-4, 1e-3, 0.01, 0.0101, 0.05, 0.2, 0.5, 0.9, 1.0]
  masks = [ops.random_flip_mask([50000], 31, r, precision=8).numpy() for r in rates]
  for low, high in zip(masks, masks[1:]):
    assert np.all(low & ~high == 0)
  counts = [bit_counts(m).sum() for m in masks]
  assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 8 * 50000


def test_asymmetric_masks_are_nested_in_their_own_rates():
  previous = None
  for rate_0to1, rate_1to0 in [(0.001, 0.002), (0.01, 0.03), (0.1, 0.2), (0.4, 0.6)]:
    current = [m.numpy() for m in ops.asymmetric_masks([30000], 9, rate_0to1, rate_1to0)]
    assert not np.any(current[0] & current[1])
    if previous is not None:
      assert np.all(previous[0] & ~current[0] == 0)
      assert np.all(previous[1] & ~current[1] == 0)
    previous = current


def test_asymmetric_set_mask_without_clearing_equals_flip_mask():
  flip = ops.random_flip_mask([20000], 17, 0.03, precision=6, offset=160).numpy()
  set_mask, clear_mask = ops.asymmetric_masks([20000], 17, 0.03, 0.0, precision=6, offset=160)
  np.testing.assert_array_equal(set_mask.numpy(), flip)
  assert not np.any(clear_mask.numpy())
  # With clearing on, the set mask is still the flip mask (same uniforms).
  set_mask, _ = ops.asymmetric_masks([20000], 17, 0.03, 0.25, precision=6, offset=160)
  np.testing.assert_array_equal(set_mask.numpy(), flip)


def test_identical_seed_yields_identical_mask():
  first = ops.random_flip_mask([30000], 123, 0.02).numpy()
  second = ops.random_flip_mask([30000], 123, 0.02).numpy()
  np.testing.assert_array_equal(first, second)


def test_different_seeds_yield_different_masks():
  first = ops.random_flip_mask([30000], 123, 0.02).numpy()
  second = ops.random_flip_mask([30000], 124, 0.02).numpy()
  third = ops.random_flip_mask([30000], 123 + 2**32, 0.02).numpy()  # high key word matters
  overlap = bit_counts(first & second).sum()
  assert np.any(first != second) and np.any(first != third)
  assert overlap < 0.1 * bit_counts(first).sum()


def test_random_mask_at_offset_equals_slice_of_larger_mask():
  big = ops.random_flip_mask([10000], 5, 0.1, precision=7).numpy()
  part = ops.random_flip_mask([1000], 5, 0.1, precision=7, offset=8 * 4321).numpy()
  np.testing.assert_array_equal(part, big[4321:5321])
  big_set, big_clear = ops.asymmetric_masks([10000], 5, 0.1, 0.2)
  part_set, part_clear = ops.asymmetric_masks([1000], 5, 0.1, 0.2, offset=8 * 999)
  np.testing.assert_array_equal(part_set.numpy(), big_set.numpy()[999:1999])
  np.testing.assert_array_equal(part_clear.numpy(), big_clear.numpy()[999:1999])


@pytest.mark.parametrize("offset", [1, 5, 8, 1003])
def test_profiled_mask_at_any_offset_equals_bit_slice_of_larger_mask(offset):
  rng = np.random.default_rng(1)
  p0t1 = rng.uniform(0, 0.3, size=(7, 11))
  p1t0 = rng.uniform(0, 0.3, size=(7, 11))
  size = 500
  big_set, big_clear = ops.profiled_masks([size + 200], 13, p0t1, p1t0, precision=8)
  part_set, part_clear = ops.profiled_masks([size], 13, p0t1, p1t0, precision=8, offset=offset)
  for big, part in ((big_set, part_set), (big_clear, part_clear)):
    big_bits = np.unpackbits(big.numpy(), bitorder="little")
    want = np.packbits(big_bits[offset:offset + 8 * size], bitorder="little")
    np.testing.assert_array_equal(part.numpy(), want)


def test_profiled_all_ones_map_sets_every_bit_and_all_zero_map_sets_none():
  ones = np.ones((4, 8), np.float32)
  zeros = np.zeros((4, 8), np.float32)
  set_mask, clear_mask = ops.profiled_masks([3000], 1, ones, zeros, precision=5, offset=3)
  assert np.all(set_mask.numpy() == 31) and not np.any(clear_mask.numpy())
  set_mask, clear_mask = ops.profiled_masks([3000], 1, zeros, ones, precision=8, offset=3)
  assert not np.any(set_mask.numpy()) and np.all(clear_mask.numpy() == 255)
  set_mask, clear_mask = ops.profiled_masks([3000], 1, zeros, zeros)
  assert not np.any(set_mask.numpy()) and not np.any(clear_mask.numpy())


@pytest.mark.parametrize("offset", [0, 5, 37, 1000])
def test_single_faulty_cell_lands_where_the_offset_puts_it(offset):
  rows, cols = 16, 64  # 1024 cells: more than the 800 bits below, so no wrap-around
  p0t1 = np.zeros((rows, cols))
  p1t0 = np.zeros((rows, cols))
  cell_row, cell_col = 3, 21
  p0t1[cell_row, cell_col] = 1.0
  size = 100
  set_mask, _ = ops.profiled_masks([size], 2, p0t1, p1t0, offset=offset)
  address = (cell_row * cols + cell_col - offset) % (rows * cols)  # bit index in the mask
  want = np.zeros(8 * size, np.uint8)
  if address < 8 * size:
    want[address] = 1
  np.testing.assert_array_equal(np.unpackbits(set_mask.numpy(), bitorder="little"), want)


def test_profiled_map_wraps_around():
  p0t1 = np.zeros((3, 5))
  p1t0 = np.zeros((3, 5))
  p1t0[2, 4] = 1.0  # the last of 15 cells
  size = 100
  _, clear_mask = ops.profiled_masks([size], 2, p0t1, p1t0, offset=7)
  bits = np.unpackbits(clear_mask.numpy(), bitorder="little")
  addresses = 7 + np.arange(8 * size)
  np.testing.assert_array_equal(bits, (addresses % 15 == 14).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Applying masks.


def test_apply_bit_errors_equals_the_numpy_formula():
  rng = np.random.default_rng(3)
  values, flip, set_mask, clear_mask = rng.integers(0, 256, size=(4, 6, 7, 11), dtype=np.uint8)
  got = ops.apply_bit_errors(values, flip, set_mask, clear_mask).numpy()
  np.testing.assert_array_equal(got, ((values ^ flip) | set_mask) & ~clear_mask)
  np.testing.assert_array_equal(ops.apply_bit_errors(values, flip=flip).numpy(), values ^ flip)
  np.testing.assert_array_equal(
      ops.apply_bit_errors(values, clear_mask=clear_mask).numpy(), values & ~clear_mask)
  np.testing.assert_array_equal(
      ops.apply_bit_errors(values, set_mask=set_mask).numpy(), values | set_mask)


def test_flipping_twice_restores_the_input():
  values = np.random.default_rng(4).integers(0, 256, size=50000, dtype=np.uint8)
  flip = ops.random_flip_mask([50000], 6, 0.3)
  once = ops.apply_bit_errors(values, flip)
  twice = ops.apply_bit_errors(once, flip).numpy()
  assert np.any(once.numpy() != values)
  np.testing.assert_array_equal(twice, values)


def test_zero_masks_leave_values_bit_identical():
  values = np.random.default_rng(5).integers(0, 256, size=(33, 7), dtype=np.uint8)
  zeros = np.zeros_like(values)
  np.testing.assert_array_equal(ops.apply_bit_errors(values, zeros, zeros, zeros).numpy(), values)
  np.testing.assert_array_equal(ops.apply_bit_errors(values).numpy(), values)


# --------------------------------------------------------------------------------------------
# Shapes, graphs, threads.


def test_masks_take_the_requested_shape_from_lists_and_int32_or_int64_tensors():
  for shape in ([3, 4, 5], tf.constant([3, 4, 5], tf.int32), tf.constant([3, 4, 5], tf.int64),
                tf.TensorShape([3, 4, 5])):
    mask = ops.random_flip_mask(shape, 1, 0.5)
    assert mask.shape == (3, 4, 5) and mask.dtype == tf.uint8
  flat = ops.random_flip_mask([60], 1, 0.5).numpy()
  np.testing.assert_array_equal(ops.random_flip_mask([3, 4, 5], 1, 0.5).numpy().reshape(-1), flat)
  assert ops.random_flip_mask([0, 4], 1, 0.5).shape == (0, 4)


def test_masks_inside_tf_function_take_the_seed_as_a_runtime_tensor():
  traces = []

  @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.float64)])
  def perturb(seed, rate):
    traces.append(1)
    values = tf.zeros([5000], tf.uint8)
    flip = ops.random_flip_mask(tf.shape(values), seed, rate)
    set_mask, clear_mask = ops.asymmetric_masks(tf.shape(values), seed, rate, rate)
    return ops.apply_bit_errors(values, flip), set_mask, clear_mask

  first = perturb(tf.constant(1, tf.int64), tf.constant(0.1, tf.float64))
  second = perturb(tf.constant(2, tf.int64), tf.constant(0.1, tf.float64))
  assert len(traces) == 1
  np.testing.assert_array_equal(first[0].numpy(), ops.random_flip_mask([5000], 1, 0.1).numpy())
  assert np.any(first[0].numpy() != second[0].numpy())
  assert first[0].shape == (5000,) and first[1].shape == (5000,)


def test_ops_have_no_gradient():
  weights = tf.Variable(tf.ones([10]))
  with tf.GradientTape() as tape:
    codes = tf.cast(weights * 3.0, tf.uint8)
    perturbed = ops.apply_bit_errors(codes, ops.random_flip_mask([10], 1, 0.5))
    loss = tf.reduce_sum(tf.cast(perturbed, tf.float32) * weights)
  # Only the direct path through `weights` contributes; the uint8 path is cut.
  np.testing.assert_allclose(tape.gradient(loss, weights).numpy(),
                             tf.cast(perturbed, tf.float32).numpy())


# Loads the library alone (not the tfbet package, which imports Keras) to keep the runs short.
_THREADS_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[2]))
    lib = tf.load_op_library(sys.argv[1])
    i64 = lambda x: tf.constant(x, tf.int64)
    f64 = lambda x: tf.constant(x, tf.float64)
    i32 = lambda x: tf.constant(x, tf.int32)
    rng = np.random.default_rng(0)
    p0t1 = tf.constant(rng.uniform(0, 0.2, size=(64, 128)))
    p1t0 = tf.constant(rng.uniform(0, 0.2, size=(64, 128)))
    outputs = [lib.tfbet_random_flip_mask(i64([1_000_003]), i64(42), f64(0.05), i32(7),
                                          i64(8 * 77))]
    outputs += lib.tfbet_asymmetric_masks(i64([300_001]), i64(42), f64(0.05), f64(0.1), i32(8),
                                          i64(0))
    outputs += lib.tfbet_profiled_masks(i64([300_001]), i64(42), p0t1, p1t0, i32(8), i64(13))
    values = tf.constant(rng.integers(0, 256, size=300_001, dtype=np.uint8))
    outputs.append(lib.tfbet_apply_bit_errors(values, outputs[1], outputs[1], outputs[2]))
    digest = hashlib.sha256()
    for output in outputs:
      digest.update(output.numpy().tobytes())
    print("DIGEST", digest.hexdigest())
    """)


def _digests(runs):
  """DIGEST lines of _THREADS_SCRIPT for each (library path, threads), run concurrently."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  processes = [
      subprocess.Popen([sys.executable, "-c", _THREADS_SCRIPT, library, str(threads)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for library, threads in runs]
  digests = []
  for process in processes:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    digests.append([line for line in stdout.splitlines() if line.startswith("DIGEST")])
    assert digests[-1], stdout
  return digests


def test_results_are_bit_identical_whatever_the_thread_count():
  single, several = _digests([(ops.LIBRARY_PATH, 1), (ops.LIBRARY_PATH, 5)])
  assert single == several


_BAZEL_LIBRARY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "build", "bazel", "_tfbet_ops.so")


@pytest.mark.skipif(not os.path.isfile(_BAZEL_LIBRARY),
                    reason="no Bazel build (run custom_ops/bazel_build.sh)")
def test_bazel_built_library_gives_the_same_masks_as_the_pip_built_one():
  bazel, pip = _digests([(_BAZEL_LIBRARY, 2), (ops.LIBRARY_PATH, 2)])
  assert bazel == pip


# --------------------------------------------------------------------------------------------
# Bad input.


def _bad_tensor_calls():
  """(callable with tensor arguments, words the kernel's message must contain)."""
  f64 = lambda x: tf.constant(x, tf.float64)  # noqa: E731
  i64 = lambda x: tf.constant(x, tf.int64)  # noqa: E731
  i32 = lambda x: tf.constant(x, tf.int32)  # noqa: E731
  good_map = tf.constant(np.zeros((2, 3)), tf.float64)
  return [
      (lambda: ops.random_flip_mask([10], i64(1), f64(1.5)), "rate must be in [0, 1]"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(-0.1)), "rate must be in [0, 1]"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(np.nan)), "rate must be in [0, 1]"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(0.1), i32(0)), "precision must be in 1..8"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(0.1), i32(9)), "precision must be in 1..8"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(0.1), 8, i64(-8)), "offset must be >= 0"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(0.1), 8, i64(4)),
       "offset must be a multiple of 8"),
      (lambda: ops.random_flip_mask([10], i64(1), f64(0.1), 8, i64(2**63 - 16)),
       "must fit in an int64"),
      (lambda: ops.random_flip_mask(tf.constant([3, -1]), 1, 0.1), "shape must hold dimensions"),
      (lambda: ops.random_flip_mask(tf.constant([[3]]), 1, 0.1), "shape must be a 1-D"),
      (lambda: ops.random_flip_mask([10], i64([1, 2]), 0.1), "seed must be a scalar"),
      (lambda: ops.asymmetric_masks([10], 1, f64(0.7), f64(0.5)),
       "rate_0to1 + rate_1to0 must be <= 1"),
      (lambda: ops.asymmetric_masks([10], 1, f64(0.1), f64(2.0)), "rate_1to0 must be in [0, 1]"),
      (lambda: ops.profiled_masks([10], 1, tf.constant(np.full((2, 3), 1.5)), good_map),
       "p0t1 must hold probabilities in [0, 1]"),
      (lambda: ops.profiled_masks([10], 1, good_map, tf.constant(np.full((2, 3), -1.0))),
       "p1t0 must hold probabilities in [0, 1]"),
      (lambda: ops.profiled_masks([10], 1, tf.constant(np.full((2, 3), 0.6)),
                                  tf.constant(np.full((2, 3), 0.6))),
       "p0t1 + p1t0 must be <= 1"),
      (lambda: ops.profiled_masks([10], 1, tf.zeros([0, 3], tf.float64),
                                  tf.zeros([0, 3], tf.float64)), "must not be empty"),
      (lambda: ops.profiled_masks([10], 1, good_map, good_map, 8, i64(-1)), "offset must be >= 0"),
  ]


@pytest.mark.parametrize("index", range(len(_bad_tensor_calls())))
def test_bad_tensor_input_raises_invalid_argument_naming_the_input(index):
  call, words = _bad_tensor_calls()[index]
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=re.escape(words)):
    call()


@pytest.mark.parametrize("call, error, words", [
    (lambda: ops.random_flip_mask([10], 1, 1.5), ValueError, "rate must be in [0, 1]"),
    (lambda: ops.random_flip_mask([10], 1, float("nan")), ValueError, "rate must be in [0, 1]"),
    (lambda: ops.random_flip_mask([10], 1, "0.1"), TypeError, "rate must be a real number"),
    (lambda: ops.random_flip_mask([10], 1.5, 0.1), TypeError, "seed must be an integer"),
    (lambda: ops.random_flip_mask([10], 2**64, 0.1), ValueError, "seed must be an integer in"),
    (lambda: ops.random_flip_mask([10], True, 0.1), TypeError, "seed must be a number"),
    (lambda: ops.random_flip_mask([10], 1, 0.1, precision=0), ValueError,
     "precision must be in 1..8"),
    (lambda: ops.random_flip_mask([10], 1, 0.1, precision=9), ValueError,
     "precision must be in 1..8"),
    (lambda: ops.random_flip_mask([10], 1, 0.1, offset=-8), ValueError, "offset must be"),
    (lambda: ops.random_flip_mask([10], 1, 0.1, offset=3), ValueError, "multiple of 8"),
    (lambda: ops.random_flip_mask([10, -2], 1, 0.1), ValueError, "shape must hold dimensions"),
    (lambda: ops.random_flip_mask(tf.constant([1.0]), 1, 0.1), TypeError,
     "shape must be an int32 or int64"),
    (lambda: ops.random_flip_mask([10], tf.constant(1.0), 0.1), TypeError,
     "seed must be an integer tensor"),
    (lambda: ops.random_flip_mask([10], 1, tf.constant(1)), TypeError,
     "rate must be a floating tensor"),
    (lambda: ops.asymmetric_masks([10], 1, 0.6, 0.6), ValueError,
     "rate_0to1 + rate_1to0 must be <= 1"),
    (lambda: ops.asymmetric_masks([10], 1, 0.1, -0.1), ValueError, "rate_1to0 must be in [0, 1]"),
    (lambda: ops.profiled_masks([10], 1, np.zeros((2, 3)), np.zeros((3, 2))), ValueError,
     "same shape"),
    (lambda: ops.profiled_masks([10], 1, np.zeros(6), np.zeros(6)), ValueError, "2-D"),
    (lambda: ops.profiled_masks([10], 1, np.zeros((0, 3)), np.zeros((0, 3))), ValueError,
     "must not be empty"),
    (lambda: ops.profiled_masks([10], 1, np.full((2, 2), 2.0), np.zeros((2, 2))), ValueError,
     "p0t1 must hold probabilities in [0, 1]"),
    (lambda: ops.profiled_masks([10], 1, np.full((2, 2), 0.7), np.full((2, 2), 0.7)),
     ValueError, "p0t1 + p1t0 must be <= 1"),
    (lambda: ops.profiled_masks([10], 1, np.zeros((2, 2), np.int32), np.zeros((2, 2))),
     TypeError, "p0t1 must hold floating"),
    (lambda: ops.apply_bit_errors(np.zeros(4, np.int32), np.zeros(4, np.uint8)), TypeError,
     "values must be a uint8"),
    (lambda: ops.apply_bit_errors(np.zeros(4, np.uint8), np.zeros(4, np.float32)), TypeError,
     "flip must be a uint8"),
    (lambda: ops.apply_bit_errors(np.zeros(4, np.uint8), np.zeros(5, np.uint8)), ValueError,
     "flip must have the shape of values"),
])
def test_bad_python_input_raises_a_clear_error_naming_the_argument(call, error, words):
  with pytest.raises(error, match=re.escape(words)):
    call()


def test_apply_kernel_rejects_mismatched_shapes_at_run_time():
  @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8)] * 2)
  def apply(values, flip):
    return ops.apply_bit_errors(values, flip)

  with pytest.raises(tf.errors.InvalidArgumentError, match="flip must have the shape of values"):
    apply(tf.zeros([4], tf.uint8), tf.zeros([5], tf.uint8))


def test_library_is_loaded_from_next_to_the_module_unless_overridden():
  if "TFBET_OPS_LIBRARY" in os.environ:
    assert ops.LIBRARY_PATH == os.environ["TFBET_OPS_LIBRARY"]
  else:
    assert os.path.dirname(ops.LIBRARY_PATH) == os.path.dirname(os.path.abspath(ops.__file__))
    assert os.path.basename(ops.LIBRARY_PATH).startswith("_tfbet_ops")


def test_the_last_valid_byte_of_the_address_space_is_admitted():
  last_byte = 2**63 - 8  # bits 2**63 - 8 .. 2**63 - 1
  mask = ops.random_flip_mask([1], 11, 0.5, offset=last_byte).numpy()
  np.testing.assert_array_equal(mask, reference_flip(1, 11, 0.5, 8, last_byte))
  set_mask, clear_mask = ops.asymmetric_masks([1], 11, 0.5, 0.5, offset=last_byte)
  assert (set_mask.numpy() | clear_mask.numpy())[0] == 0xFF
  set_mask, _ = ops.profiled_masks([1], 11, np.ones((2, 3)), np.zeros((2, 3)), offset=last_byte)
  assert set_mask.numpy()[0] == 0xFF
  for offset, shape in ((last_byte, [2]), (last_byte + 1, [1])):
    with pytest.raises(tf.errors.InvalidArgumentError, match="must fit in an int64"):
      ops.profiled_masks(shape, 11, np.ones((2, 3)), np.zeros((2, 3)), offset=offset)
  with pytest.raises(tf.errors.InvalidArgumentError, match="must fit in an int64"):
    ops.random_flip_mask([2], 11, 0.5, offset=last_byte)


@pytest.mark.parametrize("call, words", [
    (lambda: ops.random_flip_mask([4], 1, 0.5, tf.constant(2**32 + 3, tf.int64)),
     "precision must fit in int32"),
    (lambda: ops.random_flip_mask([4], 1, 0.5, tf.constant(-2**31 - 1, tf.int64)),
     "precision must fit in int32"),
    (lambda: ops.random_flip_mask([4], tf.constant(2**63, tf.uint64), 0.5),
     "seed must fit in int64"),
    (lambda: ops.random_flip_mask([4], 1, 0.5, 8, tf.constant(2**64 - 8, tf.uint64)),
     "offset must fit in int64"),
])
def test_wider_integer_tensors_are_range_checked_not_wrapped(call, words):
  with pytest.raises(tf.errors.InvalidArgumentError, match=words):
    call()


def test_wider_integer_tensors_are_range_checked_inside_tf_function():
  @tf.function(input_signature=[tf.TensorSpec([], tf.int64)])
  def mask(precision):
    return ops.random_flip_mask([4], 1, 0.5, precision)

  assert mask(tf.constant(3, tf.int64)).numpy().max() < 8
  with pytest.raises(tf.errors.InvalidArgumentError, match="precision must fit in int32"):
    mask(tf.constant(2**32 + 3, tf.int64))


@pytest.mark.parametrize("rate", [0.2, 0.9])
def test_flip_mask_of_any_byte_range_equals_the_slice_of_a_larger_mask(rate):
  # Eight groups share a filter block and the CPU kernel works on 512 groups at a time: ranges
  # that start and end inside blocks and batches must see the same bits.
  big = ops.random_flip_mask([5000], 71, rate, precision=8, offset=8 * 3).numpy()
  for start, length in [(0, 1), (1, 7), (7, 9), (5, 3), (63, 130), (511, 2), (512, 600),
                        (1000, 3000), (4999, 1)]:
    part = ops.random_flip_mask([length], 71, rate, offset=8 * (3 + start)).numpy()
    np.testing.assert_array_equal(part, big[start:start + length], err_msg=str((start, length)))


def test_apply_with_one_mask_checks_the_shape_at_run_time():
  @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8)] * 2)
  def apply_clear(values, clear_mask):
    return ops.apply_bit_errors(values, clear_mask=clear_mask)

  with pytest.raises(tf.errors.InvalidArgumentError, match="clear_mask must have the shape"):
    apply_clear(tf.zeros([4], tf.uint8), tf.zeros([1], tf.uint8))
  np.testing.assert_array_equal(
      apply_clear(tf.constant([255, 7], tf.uint8), tf.constant([1, 2], tf.uint8)).numpy(),
      [254, 5])


# --------------------------------------------------------------------------------------------
# GPU kernels (bit_errors_kernels.cu.cc), where a GPU and a CUDA build are present.


def _gpu_kernels_present():
  """True when a GPU is visible and the library has GPU kernels (TFBET_BUILD_CUDA=1)."""
  if not tf.config.list_physical_devices("GPU"):
    return False
  with tf.device("/GPU:0"):  # soft placement puts a CPU-only op on the CPU
    mask = ops.random_flip_mask([8], 1, 0.5)
  return "GPU" in mask.device


requires_gpu_kernels = pytest.mark.skipif(
    not _gpu_kernels_present(),
    reason="no visible GPU with the tfbet CUDA kernels (build with TFBET_BUILD_CUDA=1)")


def _on(device, function):
  with tf.device(device):
    result = function()
  return [r.numpy() for r in (result if isinstance(result, (list, tuple)) else [result])]


@requires_gpu_kernels
@pytest.mark.parametrize("size, seed, rate, precision, offset", [
    (1, 3, 0.5, 8, 0),
    (1_000_003, 42, 0.01, 8, 8 * 77),
    (300_001, -5, 1e-4, 6, 8 * (2**32 - 1000)),
    (70_000, 2**62 + 1, 0.2, 8, 8 * 5),
    (70_000, 9, 0.9, 7, 0),
])
def test_gpu_flip_masks_equal_cpu_masks_bit_for_bit(size, seed, rate, precision, offset):
  make = lambda: ops.random_flip_mask([size], seed, rate, precision, offset)  # noqa: E731
  gpu, cpu = _on("/GPU:0", make), _on("/CPU:0", make)
  np.testing.assert_array_equal(gpu[0], cpu[0])


@requires_gpu_kernels
@pytest.mark.parametrize("rate_0to1, rate_1to0", [(0.01, 0.0), (0.05, 0.1), (0.4, 0.6)])
def test_gpu_asymmetric_masks_and_application_equal_the_cpu_ones(rate_0to1, rate_1to0):
  values = np.random.default_rng(0).integers(0, 256, size=200_003, dtype=np.uint8)

  def make():
    set_mask, clear_mask = ops.asymmetric_masks([values.size], 11, rate_0to1, rate_1to0,
                                                offset=8 * 13)
    flip = ops.random_flip_mask([values.size], 12, 0.03)
    return set_mask, clear_mask, ops.apply_bit_errors(values, flip, set_mask, clear_mask)

  for gpu, cpu in zip(_on("/GPU:0", make), _on("/CPU:0", make)):
    np.testing.assert_array_equal(gpu, cpu)
