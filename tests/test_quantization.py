"""Quantization against a numpy implementation of Eq. (1), (3), (4) written here."""
import itertools

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfbet import quantization as q
from tfbet import quantize_configs
from tfbet import quantizers

PRESETS = sorted(q.PRESETS)
NOT_ROUNDING = sorted(name for name, fields in q.PRESETS.items() if not fields["rounding"])


def numpy_codes(w, scheme):
  """Eq. (1) (+ Eq. 3 for asymmetric ranges, + Eq. 4 for unsigned codes), per tensor."""
  w = w.astype(np.float64)
  levels = 2 ** (scheme.precision - 1) - 1
  if scheme.asymmetric:
    q_min, q_max = w.min(), w.max()
    s = ((w - q_min) / (q_max - q_min) * 2 - 1) * levels  # Delta = 1 / levels on [-1, 1]
  else:
    delta = np.abs(w).max() / levels
    s = w / delta
  if scheme.rounding:
    r = np.sign(s) * np.floor(np.abs(s) + 0.5)
  else:
    r = np.floor(s) if scheme.int_conversion == "floor" else np.trunc(s)
  r = r.astype(np.int64)
  if scheme.unsigned:
    return (r + levels).astype(np.uint8)
  return (r % 2 ** scheme.precision).astype(np.uint8)


def numpy_dequantize(codes, q_min, q_max, scheme):
  m, levels = scheme.precision, 2 ** (scheme.precision - 1) - 1
  c = codes.astype(np.int64)
  r = c - levels if scheme.unsigned else np.where(c >= 2 ** (m - 1), c - 2 ** m, c)
  if scheme.asymmetric:
    return (r / levels + 1) / 2 * (q_max - q_min) + q_min
  return r * q_max / levels


def _random_weights(seed, n=2000):
  rng = np.random.default_rng(seed)
  return (rng.normal(0.02, 0.1, size=n)).astype(np.float32)


def _quantize(w, scheme):
  q_min, q_max = q.tensor_range(w, scheme)
  codes = q.quantize(w, q_min, q_max, scheme).numpy()
  return codes, float(q_min), float(q_max)


@pytest.mark.parametrize("preset,precision", itertools.product(PRESETS, range(2, 9)))
def test_codes_equal_the_numpy_equations_for_every_preset_and_precision(preset, precision):
  scheme = q.get_scheme(preset, precision)
  w = _random_weights(precision)
  codes, q_min, q_max = _quantize(w, scheme)
  np.testing.assert_array_equal(codes, numpy_codes(w, scheme))
  assert codes.max() <= (2 ** precision - 2 if scheme.unsigned else 2 ** precision - 1)
  deq = q.dequantize(codes, q_min, q_max, scheme).numpy()
  np.testing.assert_allclose(deq, numpy_dequantize(codes, q_min, q_max, scheme), rtol=1e-6,
                             atol=1e-7)


@pytest.mark.parametrize("preset,precision", itertools.product(PRESETS, range(2, 9)))
def test_round_trip_error_is_at_most_half_a_step_with_rounding_and_below_a_step_without(
    preset, precision):
  scheme = q.get_scheme(preset, precision)
  w = _random_weights(100 + precision)
  codes, q_min, q_max = _quantize(w, scheme)
  deq = q.dequantize(codes, q_min, q_max, scheme).numpy()
  delta = q.step_size(q_min, q_max, scheme)
  err = np.abs(deq.astype(np.float64) - w)
  if scheme.rounding:
    assert err.max() <= delta / 2 * (1 + 1e-5)
  else:
    assert err.max() < delta
  # The range ends are represented exactly by every asymmetric scheme.
  if scheme.asymmetric:
    assert np.isclose(deq.min(), w.min()) and np.isclose(deq.max(), w.max(), rtol=1e-6)


@pytest.mark.parametrize("preset,int_conversion,precision", itertools.product(
    NOT_ROUNDING, q.INT_CONVERSIONS, (4, 8)))
def test_codes_of_either_int_conversion_equal_the_numpy_equations(preset, int_conversion,
                                                                  precision):
  scheme = q.get_scheme(preset, precision, int_conversion)
  assert scheme.int_conversion == int_conversion
  w = _random_weights(7 + precision)
  codes, q_min, q_max = _quantize(w, scheme)
  np.testing.assert_array_equal(codes, numpy_codes(w, scheme))
  deq = q.dequantize(codes, q_min, q_max, scheme).numpy()
  assert np.max(np.abs(deq.astype(np.float64) - w)) < q.step_size(q_min, q_max, scheme)


@pytest.mark.parametrize("unsigned", [False, True])
def test_hand_computed_4_bit_codes_truncate_toward_zero_or_floor(unsigned):
  # L = 7, Delta = 1/7: s = 7 w = [-7, -3.5, -0.7, 0, 0.7, 3.5, 7].
  w = np.float32([-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0])
  r = {"truncate": np.array([-7, -3, 0, 0, 0, 3, 7]), "floor": np.array([-7, -4, -1, 0, 0, 3, 7])}
  for int_conversion, integers in r.items():
    scheme = q.QuantizationScheme(precision=4, asymmetric=False, unsigned=unsigned,
                                  rounding=False, int_conversion=int_conversion)
    codes = q.quantize(w, -1.0, 1.0, scheme).numpy()
    expected = integers + 7 if unsigned else integers % 16  # offset (Eq. 4) or two's complement
    np.testing.assert_array_equal(codes, expected.astype(np.uint8), err_msg=int_conversion)
    np.testing.assert_array_equal(q.integer_values(codes, scheme).numpy(), integers)


def test_int_conversion_survives_to_dict_and_a_config_without_it_loads_as_truncate():
  scheme = q.get_scheme("unsigned", 4, "floor")
  assert scheme.to_dict()["int_conversion"] == "floor"
  assert q.QuantizationScheme.from_dict(scheme.to_dict()) == scheme
  old = {k: v for k, v in q.get_scheme("unsigned", 4).to_dict().items() if k != "int_conversion"}
  assert q.QuantizationScheme.from_dict(old).int_conversion == "truncate"
  assert q.describe(scheme) == "unsigned-floor/4bit"
  assert q.describe(q.get_scheme("unsigned", 4)) == "unsigned/4bit"
  # The quantizer and the quantize config (what a saved model holds) keep it too.
  quantizer = quantizers.BitErrorQuantizer(scheme)
  assert quantizers.BitErrorQuantizer.from_config(quantizer.get_config()).scheme == scheme
  config = quantize_configs.BitErrorQuantizeConfig([["kernel"]], scheme)
  assert quantize_configs.BitErrorQuantizeConfig.from_config(config.get_config()).scheme == scheme


def test_a_name_a_dict_and_a_scheme_become_the_same_scheme_in_every_constructor():
  scheme = q.get_scheme("unsigned", 4, "floor")
  assert q.as_scheme(scheme) is scheme
  assert q.as_scheme(scheme.to_dict()) == scheme
  assert q.as_scheme("NORMAL") == q.QuantizationScheme(8, True, False, False, False)
  for given in ("unsigned", q.get_scheme("unsigned"), q.get_scheme("unsigned").to_dict()):
    assert quantizers.BitErrorQuantizer(given).scheme == q.get_scheme("unsigned")
    assert (quantize_configs.BitErrorQuantizeConfig([["kernel"]], given).scheme
            == q.get_scheme("unsigned"))
  with pytest.raises(ValueError, match="unknown quantization preset 'robust'"):
    q.as_scheme("robust")
  with pytest.raises(TypeError):
    q.as_scheme({"precision": 8, "bits": 3})


def test_get_scheme_takes_int_conversion_from_gin():
  gin.clear_config()
  try:
    gin.bind_parameter("get_scheme.int_conversion", "floor")
    assert q.get_scheme("normal", 4).int_conversion == "floor"
  finally:
    gin.clear_config()


@pytest.mark.parametrize("kwargs,match", [
    (dict(rounding=False, int_conversion="round"), "int_conversion must be one of"),
    (dict(rounding=True, int_conversion="floor"), "without rounding only")])
def test_bad_int_conversion_is_refused(kwargs, match):
  with pytest.raises(ValueError, match=match):
    q.QuantizationScheme(**kwargs)


def test_hand_computed_codes_of_symmetric_signed_8_bit():
  scheme = q.get_scheme("normal", 8)  # Delta = 1 / 127
  w = np.array([0.5, -0.5, 1.0, -1.0, 0.0], np.float32)
  codes = q.quantize(w, -1.0, 1.0, scheme).numpy()
  # 0.5 * 127 = 63.5 -> int conversion 63; -63 in two's complement is 256 - 63 = 193.
  np.testing.assert_array_equal(codes, [63, 193, 127, 129, 0])
  rounded = q.quantize(w, -1.0, 1.0, q.QuantizationScheme(
      per_tensor=True, asymmetric=False, unsigned=False, rounding=True)).numpy()
  np.testing.assert_array_equal(rounded, [64, 192, 127, 129, 0])


def test_msb_flip_of_a_signed_code_moves_the_weight_by_about_q_max_and_lsb_by_delta():
  scheme = q.get_scheme("normal", 8)
  q_max = 0.8
  code = q.quantize(np.float32([0.3]), -q_max, q_max, scheme)
  base = q.dequantize(code, -q_max, q_max, scheme).numpy()[0]
  msb = q.dequantize(np.uint8([int(code[0]) ^ 0x80]), -q_max, q_max, scheme).numpy()[0]
  lsb = q.dequantize(np.uint8([int(code[0]) ^ 0x01]), -q_max, q_max, scheme).numpy()[0]
  assert abs(abs(msb - base) - 128 * q_max / 127) < 1e-6  # ~ q_max (Sec. 4.1)
  assert abs(abs(lsb - base) - q_max / 127) < 1e-6  # Delta


def test_msb_flip_of_an_unsigned_code_moves_the_weight_by_half_the_range():
  scheme = q.get_scheme("rquant", 8)
  q_min, q_max = -0.2, 0.6
  code = q.quantize(np.float32([0.1]), q_min, q_max, scheme)
  base = q.dequantize(code, q_min, q_max, scheme).numpy()[0]
  msb = q.dequantize(np.uint8([int(code[0]) ^ 0x80]), q_min, q_max, scheme).numpy()[0]
  assert abs(abs(msb - base) - 128 * (q_max - q_min) / 2 / 127) < 1e-6


def test_unsigned_codes_carry_the_offset_of_eq_4():
  scheme = q.get_scheme("rquant", 4)  # L = 7
  codes = q.quantize(np.float32([-1.0, 0.0, 1.0]), -1.0, 1.0, scheme).numpy()
  np.testing.assert_array_equal(codes, [0, 7, 14])


@pytest.mark.parametrize("preset", PRESETS)
def test_one_bit_codes_select_the_nearer_end_of_the_range(preset):
  scheme = q.get_scheme(preset, 1)
  w = np.float32([-0.4, -0.1, 0.2, 0.5])
  codes, q_min, q_max = _quantize(w, scheme)
  assert set(codes.tolist()) <= {0, 1}
  deq = q.dequantize(codes, q_min, q_max, scheme).numpy()
  expected_low = q_min
  middle = (q_min + q_max) / 2
  expected = np.where(w >= middle, q_max, expected_low)
  np.testing.assert_allclose(deq, expected, rtol=1e-6)


@pytest.mark.parametrize("preset", PRESETS)
def test_constant_tensors_do_not_divide_by_zero(preset):
  scheme = q.get_scheme(preset, 8)
  for value in (0.0, 0.25):
    w = np.full([5], value, np.float32)
    codes, q_min, q_max = _quantize(w, scheme)
    deq = q.dequantize(codes, q_min, q_max, scheme).numpy()
    assert np.all(np.isfinite(deq))
    np.testing.assert_allclose(deq, w, atol=1e-9)


def test_fake_quantization_has_a_straight_through_gradient_of_one():
  scheme = q.get_scheme("rquant", 4)
  w = tf.Variable(_random_weights(3, 50))
  with tf.GradientTape() as tape:
    y = tf.reduce_sum(q.fake_quantize(w, scheme) * tf.range(50, dtype=tf.float32))
  grad = tape.gradient(y, w).numpy()
  np.testing.assert_array_equal(grad, np.arange(50, dtype=np.float32))
  codes, q_min, q_max = _quantize(w.numpy(), scheme)
  np.testing.assert_array_equal(q.fake_quantize(w, scheme).numpy(),
                                q.dequantize(codes, q_min, q_max, scheme).numpy())


def test_global_range_covers_all_tensors():
  scheme = q.get_scheme("global", 8)
  ranges = [q.tensor_range(np.float32([0.1, -0.3]), scheme),
            q.tensor_range(np.float32([0.5, 0.2]), scheme)]
  q_min, q_max = q.combined_range(ranges, scheme)
  assert float(q_min) == pytest.approx(-0.5) and float(q_max) == pytest.approx(0.5)


@pytest.mark.parametrize("precision", [0, 9, -1, 2.5, True])
def test_precision_outside_1_to_8_is_refused(precision):
  with pytest.raises(ValueError, match="precision"):
    q.QuantizationScheme(precision=precision)


def test_unknown_preset_name_is_refused():
  with pytest.raises(ValueError, match="unknown quantization preset"):
    q.get_scheme("robust")


def test_nan_weights_raise_a_clear_error():
  scheme = q.get_scheme("rquant", 8)
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    q.quantize(np.float32([0.1, np.nan]), -1.0, 1.0, scheme)
