"""Tests of the voltage / bit error rate / energy model (Fig. 1, App. A)."""
import math

import numpy as np
import pytest

from tfbet import energy


def _reference_rate(v):
  """The documented model, written out independently: 1 - exp(-s (exp(k (1 - v)) - 1))."""
  if v >= 1:
    return 0.0
  intensity = energy.RATE_SCALE * (math.exp(energy.RATE_SLOPE * (1 - v)) - 1)
  return 1 - math.exp(-intensity)


def test_one_percent_bit_errors_save_thirty_percent_energy():
  # Sec. 1: "p = 1 % allow to reduce SRAM energy by roughly 30 %".
  assert energy.energy_saving(0.01) == pytest.approx(0.30, abs=1e-12)
  assert energy.voltage_at_rate(0.01) == pytest.approx(math.sqrt(0.7), abs=1e-12)
  assert energy.rate_at_voltage(math.sqrt(0.7)) == pytest.approx(0.01, rel=1e-12)


def test_point_one_percent_bit_errors_save_about_twenty_percent_energy():
  assert energy.energy_saving(0.001) == pytest.approx(0.20, abs=0.005)


def test_vmin_and_above_are_error_free():
  assert energy.rate_at_voltage(1.0) == 0.0
  assert energy.rate_at_voltage(1.3) == 0.0
  assert energy.voltage_at_rate(0.0) == 1.0
  assert energy.energy_saving(0.0) == 0.0
  assert energy.energy_at_voltage(1.0) == 1.0


def test_rate_matches_the_documented_formula():
  for v in (0.5, 0.7, 0.78, 0.81, 0.85, 0.9, 0.95, 0.999):
    assert energy.rate_at_voltage(v) == pytest.approx(_reference_rate(v), rel=1e-8)


def test_rate_grows_exponentially_below_vmin():
  # Well below V_min but at small p, each 1 / RATE_SLOPE lower multiplies p by about e.
  v = 0.86
  step = 1 / energy.RATE_SLOPE
  ratio = energy.rate_at_voltage(v - step) / energy.rate_at_voltage(v)
  assert ratio == pytest.approx(math.e, rel=0.01)


def test_rate_decreases_and_energy_increases_with_voltage():
  # Below about 0.72 the model saturates at p = 1 in float64; the test stays above it.
  voltages = np.linspace(0.75, 1.2, 451)
  rates = energy.rate_at_voltage(voltages)
  energies = energy.energy_at_voltage(voltages)
  assert np.all(np.diff(rates[voltages < 1]) < 0)
  assert np.all(rates[voltages >= 1] == 0)
  assert np.all(np.diff(energies) > 0)
  assert np.all((rates >= 0) & (rates < 1))


def test_energy_is_quadratic_in_voltage():
  voltages = np.array([0.5, 0.8, 1.0, 1.1])
  np.testing.assert_allclose(energy.energy_at_voltage(voltages), voltages ** 2, rtol=1e-15)


def test_energy_saving_grows_with_rate():
  rates = np.array([0.0, 1e-4, 1e-3, 0.005, 0.01, 0.02, 0.05, 0.2, 0.9])
  savings = energy.energy_saving(rates)
  assert np.all(np.diff(savings) > 0)
  np.testing.assert_allclose(savings, 1 - energy.voltage_at_rate(rates) ** 2, rtol=1e-12)


def test_voltage_at_rate_inverts_rate_at_voltage():
  rates = np.array([1e-6, 1e-4, 0.00136, 0.00866, 0.01, 0.02744, 0.04707, 0.3, 0.99])
  np.testing.assert_allclose(energy.rate_at_voltage(energy.voltage_at_rate(rates)), rates,
                             rtol=1e-9)
  voltages = np.array([0.7, 0.75, 0.8, 0.85, 0.9, 0.99])
  np.testing.assert_allclose(energy.voltage_at_rate(energy.rate_at_voltage(voltages)), voltages,
                             rtol=1e-9)


def test_scalar_input_gives_float_and_array_input_gives_array():
  assert isinstance(energy.rate_at_voltage(0.8), float)
  assert isinstance(energy.voltage_at_rate(0.01), float)
  assert isinstance(energy.energy_saving(0.01), float)
  assert energy.rate_at_voltage([0.8, 0.9]).shape == (2,)


@pytest.mark.parametrize("rate", [-0.01, 1.0, 1.5, float("nan"), float("inf")])
def test_rate_outside_zero_one_is_rejected(rate):
  with pytest.raises(ValueError, match="rate"):
    energy.voltage_at_rate(rate)
  with pytest.raises(ValueError, match="rate"):
    energy.energy_saving(rate)


@pytest.mark.parametrize("voltage", [0.0, -0.5, float("nan")])
def test_non_positive_voltage_is_rejected(voltage):
  with pytest.raises(ValueError, match="voltage"):
    energy.rate_at_voltage(voltage)
  with pytest.raises(ValueError, match="voltage"):
    energy.energy_at_voltage(voltage)


def test_non_numeric_input_is_a_type_error():
  with pytest.raises(TypeError, match="rate"):
    energy.voltage_at_rate("one percent")
