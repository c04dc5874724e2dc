"""The argument rules of tfbet.checks: one per kind of input, the same everywhere."""
import itertools
import math
import pathlib

import numpy as np
import pytest

from tfbet import checks


@pytest.mark.parametrize("value", [0, 7, np.int64(2**63 - 1), np.uint8(3)])
def test_seed_accepts_every_non_negative_int64_and_returns_a_python_int(value):
  result = checks.seed(value)
  assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), (2**63, ValueError), (True, TypeError), (1.0, TypeError), ("3", TypeError),
])
def test_seed_refuses_negatives_overflow_bools_and_non_integers_naming_the_argument(value, error):
  with pytest.raises(error, match="chip_seed"):
    checks.seed(value, "chip_seed")


def test_count_is_an_integer_at_least_its_minimum():
  assert checks.count(0, "n") == 0
  assert checks.count(np.int32(5), "n", minimum=5) == 5
  with pytest.raises(ValueError, match=r"n must be in \[1, inf\], got 0"):
    checks.count(0, "n", minimum=1)
  with pytest.raises(TypeError, match="n must be an integer"):
    checks.count(2.0, "n")


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.01, 1.01])
def test_probability_refuses_non_finite_and_out_of_range_values(value):
  with pytest.raises(ValueError, match=r"share must be a finite number in \[0.0, 1.0\]"):
    checks.probability(value, "share")


def test_positive_refuses_zero_and_accepts_numpy_floats():
  assert checks.positive(np.float32(0.5), "w_max") == 0.5
  with pytest.raises(ValueError, match="w_max must be a finite number > 0, got 0.0"):
    checks.positive(0, "w_max")


def test_rate_above_one_half_needs_allow_high_rate_and_suggests_the_fraction():
  assert checks.rate(0.01) == 0.01
  assert checks.rate(0.75, allow_high_rate=True) == 0.75
  with pytest.raises(ValueError, match="Pass 0.0075 for 0.75 %"):
    checks.rate(0.75)
  with pytest.raises(ValueError, match=r"p must be a finite number in \[0.0, 1.0\], got 1.5"):
    checks.rate(1.5, "p", allow_high_rate=True)


def test_choice_lists_the_choices():
  assert checks.choice("max", "statistic", ("mean", "max")) == "max"
  with pytest.raises(ValueError, match=r"statistic must be one of \('mean', 'max'\), got 'min'"):
    checks.choice("min", "statistic", ("mean", "max"))


def test_path_accepts_path_like_and_can_require_an_existing_file(tmp_path):
  existing = tmp_path / "chip.npz"
  existing.write_bytes(b"")
  assert checks.path(existing, "chip file", must_exist=True) == str(existing)
  assert checks.path("not/there.npz", "output") == "not/there.npz"
  with pytest.raises(FileNotFoundError, match="chip file .*absent.npz"):
    checks.path(pathlib.Path(tmp_path / "absent.npz"), "chip file", must_exist=True)
  with pytest.raises(ValueError, match="output must be a non-empty path"):
    checks.path("", "output")
  with pytest.raises(TypeError, match="output must be a path"):
    checks.path(3, "output")


def test_a_wrong_type_is_both_a_type_error_and_a_bad_setting():
  with pytest.raises(checks.ArgumentTypeError) as error:
    checks.count(2.5, "batch_size")
  assert isinstance(error.value, TypeError) and isinstance(error.value, ValueError)
  assert "batch_size must be an integer" in str(error.value)


def test_boolean_accepts_only_true_and_false():
  assert checks.boolean(True, "flip") is True
  assert checks.boolean(np.bool_(False), "flip") is False
  for value in (1, 0.0, "True", None):
    with pytest.raises(checks.ArgumentTypeError, match=f"flip must be True or False, got {value!r}"):
      checks.boolean(value, "flip")


def test_dataclass_settings_are_stored_in_their_canonical_types():
  from tfbet import augment  # pylint: disable=g-import-not-at-top
  from tfbet import quantization  # pylint: disable=g-import-not-at-top
  scheme = quantization.QuantizationScheme(precision=np.int64(4), rounding=np.bool_(False))
  assert type(scheme.precision) is int and scheme.rounding is False
  assert scheme == quantization.QuantizationScheme(precision=4, rounding=False)
  assert type(augment.Augmentation(cutout_size=np.int32(16)).cutout_size) is int
  with pytest.raises(ValueError, match=r"precision must be in \[1, 8\], got 9"):
    quantization.QuantizationScheme(precision=9)


def test_a_count_with_a_maximum_names_the_limit():
  assert checks.count(checks.MAX_CHIPS, "num_chips", 1, checks.MAX_CHIPS) == 1_000_000
  with pytest.raises(ValueError, match=r"num_chips must be in \[1, 1000000\], got 1000001"):
    checks.count(checks.MAX_CHIPS + 1, "num_chips", 1, checks.MAX_CHIPS)


def test_a_bounded_list_reads_no_further_than_one_item_past_its_limit():
  read = []

  def endless():
    while True:
      read.append(len(read))
      yield read[-1]
  with pytest.raises(ValueError, match="chips must have at most 5 items, got more"):
    checks.bounded_list(endless(), "chips", 5)
  assert read == [0, 1, 2, 3, 4, 5]
  with pytest.raises(ValueError, match="rates must have at most 5 items, got 1000000000000"):
    checks.bounded_list(range(10**12), "rates", 5)
  assert checks.bounded_list(iter([3, 1]), "rates", 2) == [3, 1]
  with pytest.raises(TypeError, match="rates must be a list"):
    checks.bounded_list("0.1,1", "rates", 5)


def test_an_integer_beyond_every_float_is_refused_as_not_finite_not_with_an_overflow():
  with pytest.raises(ValueError, match="x must be a finite number in \\[0.0, 1.0\\], got an "
                                       "integer of 401 digits"):
    checks.probability(10**400, "x")
  with pytest.raises(ValueError, match=r"n must be in \[1, 100\], got an integer of 401 digits"):
    checks.integer(-10**400, "n", 1, 100)


def test_percentages_are_fractions_in_their_range_distinct_and_bounded():
  assert checks.percentages(["0.5", 2], "rates", 0, 100, high_included=False) == [0.005, 0.02]
  assert checks.percentages(["100"], "budgets", 0, 100, unit="percentage points") == [1.0]
  for bad, message in ((["100"], r"rates are in percent and must be in \[0, 100\), got '100'"),
                       (["nan"], r"must be in \[0, 100\)"), (["x"], "rates must be numbers in "
                                                             "percent, got 'x'"),
                       ([], "must not be empty"), (["1", "1.0"], "must be distinct")):
    with pytest.raises(ValueError, match=message):
      checks.percentages(bad, "rates", 0, 100, high_included=False)
  with pytest.raises(ValueError, match=r"magnitudes are in percent and must be in \[0, inf\)"):
    checks.percentages(["inf"], "magnitudes", 0, math.inf)
  with pytest.raises(ValueError, match=f"budgets must have at most {checks.MAX_CONDITIONS}"):
    checks.percentages(itertools.count(), "budgets", 0, 100)
