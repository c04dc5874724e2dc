"""Voltage <-> bit error rate <-> SRAM access energy, a model of Fig. 1 (App. A).

The paper plots measured bit error rates of 14nm SRAM arrays and simulated energy per access
against supply voltage; the data itself is not published. This module is a *model* of that figure,
not measurements, so that a robust bit error rate p can be translated into an energy saving.

Units: voltage ``v`` is normalized by V_min (the lowest voltage without bit errors, so ``v = 1``
gives ``p = 0``); energy is normalized by the energy per access at V_min; ``p`` is a fraction in
[0, 1) (``0.01`` is the paper's "p = 1 %").

Model:

* Bit error rate, exponential below V_min and saturating at 1:
  ``p(v) = 1 - exp(-lambda(v))`` with ``lambda(v) = RATE_SCALE * (exp(RATE_SLOPE * (1 - v)) - 1)``
  for ``v < 1`` and ``p(v) = 0`` for ``v >= 1``. For small p, ``p ~ lambda``, i.e. the rate grows
  e-fold every ``1 / RATE_SLOPE`` = 0.025 V_min (about a decade per 0.058 V_min); p reaches 1
  (in float64) below about v = 0.72.
* Energy per access, dynamic energy quadratic in voltage (Sec. 1): ``E(v) = v ** 2``.

Anchor points (assumptions that define the parameters):

* ``p(1) = 0``: V_min is error-free by definition (Fig. 1, App. A).
* ``p = 1 %`` at ``v = sqrt(0.7)``, i.e. a model robust to p = 1 % saves 30 % of the SRAM
  access energy ("p = 1 % allow to reduce SRAM energy by roughly 30 %", Sec. 1).
* ``RATE_SLOPE = 40`` puts ``p = 0.1 %`` at about 20 % energy saving (``v ~ 0.894``) and
  ``p = 2.75 %`` (chip 1's higher rate, App. C.1) at about 36 %, the steep exponential regime
  Fig. 1 shows; it is a choice, not a fitted value.
"""
import math

import numpy as np

# Rate grows e-fold every 1 / RATE_SLOPE normalized volts below V_min.
RATE_SLOPE = 40.0
# Anchor: p = ANCHOR_RATE at v = ANCHOR_VOLTAGE (30 % energy saving at p = 1 %, Sec. 1).
ANCHOR_RATE = 0.01
ANCHOR_VOLTAGE = math.sqrt(0.7)
# Chosen so that p(ANCHOR_VOLTAGE) == ANCHOR_RATE exactly.
RATE_SCALE = -math.log1p(-ANCHOR_RATE) / math.expm1(RATE_SLOPE * (1.0 - ANCHOR_VOLTAGE))


def _as_float_array(value, name):
  try:
    array = np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError) as error:
    raise TypeError(f"{name} must be a real number or an array of them, got {value!r}") from error
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} must be finite, got {value!r}")
  return array


def _like_input(array, value):
  """Returns a Python float for scalar input and an array otherwise."""
  return float(array) if np.ndim(value) == 0 else array


def _check_voltage(voltage):
  v = _as_float_array(voltage, "voltage")
  if np.any(v <= 0):
    raise ValueError(f"voltage (normalized by V_min) must be > 0, got {voltage!r}")
  return v


def _check_rate(rate):
  p = _as_float_array(rate, "rate")
  if np.any((p < 0) | (p >= 1)):
    raise ValueError(f"rate (bit error rate as a fraction) must be in [0, 1), got {rate!r}")
  return p


def rate_at_voltage(voltage):
  """Bit error rate p (fraction) at normalized voltage ``voltage`` > 0; 0 at and above V_min."""
  v = _check_voltage(voltage)
  below = np.maximum(1.0 - v, 0.0)
  intensity = RATE_SCALE * np.expm1(RATE_SLOPE * below)
  return _like_input(-np.expm1(-intensity), voltage)


def voltage_at_rate(rate):
  """Highest normalized voltage whose bit error rate is ``rate`` (in [0, 1)); 1 for rate 0."""
  p = _check_rate(rate)
  intensity = -np.log1p(-p)
  return _like_input(1.0 - np.log1p(intensity / RATE_SCALE) / RATE_SLOPE, rate)


def energy_at_voltage(voltage):
  """SRAM energy per access at normalized voltage ``voltage`` > 0, relative to V_min."""
  v = _check_voltage(voltage)
  return _like_input(v * v, voltage)


def energy_saving(rate):
  """Fraction of SRAM access energy saved by running at the voltage that gives ``rate``."""
  return _like_input(1.0 - energy_at_voltage(voltage_at_rate(rate)), rate)
