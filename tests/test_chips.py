"""Tests of the chips: random / asymmetric / profiled masks, chip files, simulator, presets, CLI."""
import os
import pathlib
import subprocess
import sys
import time
import zipfile

from absl import app
from absl import flags
import numpy as np
import pytest

from tfbet import archives
from tfbet import checks
from tfbet import chip_models
from tfbet import chips
from tfbet import energy
from tfbet.cli import simulate_chips_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _ops_or_skip():
  """The compiled op module, or a skip while it is not built yet."""
  try:
    from tfbet import ops  # pylint: disable=g-import-not-at-top
    ops.random_flip_mask([1], 0, 0.0)
  except Exception as error:  # pylint: disable=broad-except  # Missing .so, missing module.
    pytest.skip(f"compiled tfbet op not available: {error}")
  return ops


def _bits(mask, precision=8):
  """(num_bytes, precision) bool array: bit b of byte i."""
  return ((mask[:, None] >> np.arange(precision)) & 1).astype(bool)


def _small_chip(seed=0, name="tiny"):
  """A 4 x 8 array at two voltages with hand-written probabilities."""
  p0t1 = np.zeros((2, 4, 8), np.float32)
  p1t0 = np.zeros((2, 4, 8), np.float32)
  p0t1[0, 0, 1] = p0t1[1, 0, 1] = 1.0
  p1t0[0, 2, 3] = 1.0
  p0t1[0, 3, 7] = 0.25
  p1t0[0, 1, 0] = 0.5
  return chips.ProfiledChip(name, [0.8, 0.9], p0t1, p1t0, description="hand-written",
                            pattern="uniform", seed=seed)


def _write_npz(path, **overrides):
  chip = _small_chip()
  fields = dict(format_version=np.int64(1), name=np.str_("tiny"), description=np.str_("d"),
                pattern=np.str_("uniform"), rows=np.int64(4), cols=np.int64(8),
                voltages=chip.voltages, p0t1=chip.probability_maps(0.8)[0][None].repeat(2, 0),
                p1t0=chip.probability_maps(0.8)[1][None].repeat(2, 0))
  for key, value in overrides.items():
    if value is None:
      del fields[key]
    else:
      fields[key] = value
  np.savez(path, **fields)
  return path


# Chip files.


def test_saved_chip_loads_identically(tmp_path):
  chip = _small_chip()
  path = chip.save(tmp_path / "tiny.chip")
  assert path == str(tmp_path / "tiny.chip")  # Exactly this name, no ".npz" appended.
  loaded = chips.ProfiledChip.load(path, seed=7)
  assert (loaded.name, loaded.description, loaded.pattern) == ("tiny", "hand-written", "uniform")
  assert (loaded.rows, loaded.cols, loaded.num_cells, loaded.seed) == (4, 8, 32, 7)
  assert loaded.conditions == (0.8, 0.9)
  for voltage in chip.conditions:
    for original, reread in zip(chip.probability_maps(voltage), loaded.probability_maps(voltage)):
      assert reread.dtype == np.float32
      np.testing.assert_array_equal(original, reread)


def test_saved_chip_file_holds_the_documented_keys(tmp_path):
  path = _small_chip().save(tmp_path / "tiny.npz")
  with np.load(path, allow_pickle=False) as data:
    assert sorted(data.files) == sorted(chips.CHIP_FILE_KEYS)
    assert data["format_version"] == 1
    assert data["p0t1"].shape == (2, 4, 8) and data["p0t1"].dtype == np.float32
    assert data["voltages"].dtype == np.float64


@pytest.mark.parametrize("key", chips.CHIP_FILE_KEYS)
def test_file_without_a_required_key_is_rejected_naming_the_key(tmp_path, key):
  path = _write_npz(tmp_path / "bad.npz", **{key: None})
  with pytest.raises(ValueError, match=rf"bad\.npz.*lacks.*{key}"):
    chips.ProfiledChip.load(path)


@pytest.mark.parametrize("overrides, message", [
    (dict(voltages=np.array([0.8, 0.85, 0.9])), "num_voltages=3"),
    (dict(p1t0=np.zeros((2, 4, 9), np.float32)), "same shape"),
    (dict(rows=np.int64(5)), "rows, cols"),
    (dict(p0t1=np.zeros((4, 8), np.float32)), "shape"),
    (dict(voltages=np.array([0.9, 0.8])), "strictly increasing"),
    (dict(voltages=np.array([0.0, 0.8])), "> 0"),
    (dict(format_version=np.int64(2)), "format_version 2"),
    (dict(name=np.int64(3)), "name must be a scalar"),
    (dict(rows=np.array([4, 4])), "rows must be a scalar"),
])
def test_inconsistent_file_is_rejected(tmp_path, overrides, message):
  path = _write_npz(tmp_path / "bad.npz", **overrides)
  with pytest.raises(ValueError, match=message) as error:
    chips.ProfiledChip.load(path)
  assert "bad.npz" in str(error.value)


@pytest.mark.parametrize("value, message", [
    (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"), (np.nan, "NaN")])
def test_probability_outside_unit_interval_or_nan_is_rejected(tmp_path, value, message):
  p0t1 = np.zeros((2, 4, 8), np.float32)
  p0t1[1, 2, 2] = value
  path = _write_npz(tmp_path / "bad.npz", p0t1=p0t1)
  with pytest.raises(ValueError, match=rf"bad\.npz.*p0t1.*{message}"):
    chips.ProfiledChip.load(path)


def test_cell_whose_two_probabilities_exceed_one_is_rejected(tmp_path):
  p0t1 = np.zeros((2, 4, 8), np.float32)
  p1t0 = np.zeros((2, 4, 8), np.float32)
  p0t1[0, 1, 1], p1t0[0, 1, 1] = 0.7, 0.4
  path = _write_npz(tmp_path / "bad.npz", p0t1=p0t1, p1t0=p1t0)
  with pytest.raises(ValueError, match=r"bad\.npz.*p0t1 \+ p1t0 must be <= 1"):
    chips.ProfiledChip.load(path)


def test_truncated_file_is_a_value_error_naming_the_file(tmp_path):
  path = _small_chip().save(tmp_path / "chip.npz")
  data = pathlib.Path(path).read_bytes()
  for length in (len(data) // 2, len(data) - 30, 10, 0):
    truncated = tmp_path / f"truncated_{length}.npz"
    truncated.write_bytes(data[:length])
    with pytest.raises(ValueError, match=f"truncated_{length}.npz"):
      chips.ProfiledChip.load(truncated)


def test_corrupt_member_is_a_value_error_naming_the_file(tmp_path):
  path = tmp_path / "corrupt.npz"
  _small_chip().save(path)
  data = bytearray(path.read_bytes())
  with zipfile.ZipFile(path) as archive:
    info = archive.getinfo("p0t1.npy")
  start = info.header_offset + 30 + len(info.filename) + len(info.extra)
  data[start + 5:start + info.compress_size - 5] = bytes(info.compress_size - 10)
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="corrupt.npz"):
    chips.ProfiledChip.load(path)


def test_text_and_single_array_files_are_rejected(tmp_path):
  text = tmp_path / "notes.npz"
  text.write_text("not a chip")
  with pytest.raises(ValueError, match="notes.npz"):
    chips.ProfiledChip.load(text)
  single = tmp_path / "single.npy"
  np.save(single, np.zeros(3))
  with pytest.raises(ValueError, match="single.npy.*not a readable .npz archive"):
    chips.ProfiledChip.load(single)


def test_a_chip_file_whose_header_claims_74_gib_is_refused_before_reading(tmp_path):
  path = tmp_path / "huge.npz"
  _small_chip().save(path)
  with zipfile.ZipFile(path, "a") as archive:
    with archive.open("extra.npy", "w") as member:
      np.lib.format.write_array_header_1_0(
          member, {"descr": "<f4", "fortran_order": False, "shape": (2, 74 * 2 ** 27)})
      member.write(b"\0" * 64)
  with pytest.raises(ValueError, match=r"huge.npz.*'extra.npy' declares shape .*79456894976 "
                                       r"bytes\) but holds 64 bytes"):
    chips.ProfiledChip.load(path)


def test_a_chip_file_beyond_the_size_limit_is_refused(tmp_path, monkeypatch):
  path = tmp_path / "big.npz"
  _small_chip().save(path)
  monkeypatch.setattr(archives, "MAX_BYTES", 100)
  with pytest.raises(ValueError, match=r"big.npz'?: arrays of more than 100 bytes"):
    chips.ProfiledChip.load(path)


def test_a_chip_file_with_pickled_objects_is_refused(tmp_path):
  path = tmp_path / "objects.npz"
  np.savez(path, name=np.array([{"a": 1}], dtype=object))
  with pytest.raises(ValueError, match="objects.npz'?: member 'name.npy' holds Python objects"):
    chips.ProfiledChip.load(path)


def test_missing_file_is_a_file_not_found_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="absent.npz"):
    chips.ProfiledChip.load(tmp_path / "absent.npz")


def test_constructor_validates_like_the_loader():
  with pytest.raises(ValueError, match="num_voltages=1"):
    chips.ProfiledChip("x", [0.8], np.zeros((2, 4, 8)), np.zeros((2, 4, 8)))
  with pytest.raises(TypeError, match="name"):
    chips.ProfiledChip("", [0.8], np.zeros((1, 4, 8)), np.zeros((1, 4, 8)))


# Statistics of a profiled chip (App. C.1 table).


def test_rates_are_the_means_of_the_maps_and_the_share_of_certain_faults():
  chip = _small_chip()
  rates = chip.rates(0.8)
  # Cells: (0,1) 0-to-1 p=1, (2,3) 1-to-0 p=1, (3,7) 0-to-1 p=0.25, (1,0) 1-to-0 p=0.5.
  assert rates["p"] == pytest.approx((1 + 1 + 0.25 + 0.5) / 32)
  assert rates["p_0t1"] == pytest.approx(1.25 / 32)
  assert rates["p_1t0"] == pytest.approx(1.5 / 32)
  assert rates["p_sa"] == pytest.approx(2 / 32)
  assert chip.rates(0.9) == pytest.approx(dict(p=1 / 32, p_0t1=1 / 32, p_1t0=0, p_sa=1 / 32))


def test_unknown_voltage_is_rejected_listing_the_profiled_ones():
  chip = _small_chip()
  assert chip.voltage_index(0.9 + 1e-9) == 1
  with pytest.raises(ValueError, match=r"0\.85 is not profiled.*\[0\.8, 0\.9\]"):
    chip.rates(0.85)
  with pytest.raises(ValueError, match="not profiled"):
    chip.masks(4, 8, 0.85)


# Argument checks of the masks (before the op is needed).


@pytest.mark.parametrize("chip", [chips.RandomChip(1), chips.AsymmetricRandomChip(1, 0.8),
                                  _small_chip()])
def test_mask_arguments_are_validated(chip):
  condition = 0.8 if isinstance(chip, chips.ProfiledChip) else 0.01
  with pytest.raises(ValueError, match="precision"):
    chip.masks(4, 0, condition)
  with pytest.raises(ValueError, match="precision"):
    chip.masks(4, 9, condition)
  if not isinstance(chip, chips.ProfiledChip):  # Profiled maps take any bit offset.
    with pytest.raises(ValueError, match="multiple of 8"):
      chip.masks(4, 8, condition, offset=4)
  with pytest.raises(ValueError, match="offset"):
    chip.masks(4, 8, condition, offset=-8)
  with pytest.raises(ValueError, match="num_bytes"):
    chip.masks(-1, 8, condition)
  with pytest.raises(TypeError, match="num_bytes"):
    chip.masks(4.0, 8, condition)
  for masks in chip.masks(0, 8, condition):
    assert masks.shape == (0,) and masks.dtype == np.uint8


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_random_chip_rejects_rates_outside_unit_interval(rate):
  with pytest.raises(ValueError, match=r"bit error rate p.*\[0.0, 1.0\]"):
    chips.RandomChip(0).masks(4, 8, rate)


def test_chip_constructors_validate_seed_and_fraction():
  with pytest.raises(ValueError, match="seed"):
    chips.RandomChip(-1)
  with pytest.raises(TypeError, match="seed"):
    chips.RandomChip(1.5)
  with pytest.raises(ValueError, match="fraction_0to1"):
    chips.AsymmetricRandomChip(0, 1.2)
  assert chips.RandomChip(3).name == "random_3"
  assert chips.RandomChip(3).conditions is None


def test_every_chip_describes_its_kind_and_parameters():
  assert chips.RandomChip(7).describe() == {"kind": "random", "seed": 7}
  assert chips.AsymmetricRandomChip(7, 0.25).describe() == {
      "kind": "asymmetric", "seed": 7, "fraction_0to1": 0.25}
  described = _small_chip(seed=3).describe()
  # Cell (0, 1) always sets, (2, 3) always clears, (3, 7) sets w.p. 0.25, (1, 0) clears w.p. 0.5.
  assert described["rates"][0] == {"voltage": 0.8, "p": 2.75 / 32, "p_0t1": 1.25 / 32,
                                   "p_1t0": 1.5 / 32, "p_sa": 2 / 32}
  assert {k: described[k] for k in ("kind", "seed", "rows", "cols", "pattern")} == {
      "kind": "profiled", "seed": 3, "rows": 4, "cols": 8, "pattern": "uniform"}

  class MyChip(chips.Chip):
    name = "mine"

    def masks(self, num_bytes, precision, condition, offset=0):
      raise NotImplementedError

  assert MyChip().describe() == {"kind": "MyChip"}


def test_each_chip_kind_is_registered_once_with_the_settings_it_is_built_from():
  assert chip_models.KINDS == {"random": chips.RandomChip,
                               "asymmetric": chips.AsymmetricRandomChip,
                               "profiled": chips.ProfiledChip}
  assert chip_models.kinds(("seed", "fraction_0to1")) == ("random", "asymmetric")  # bin/eval
  assert chip_models.kinds(("seed", "path")) == ("random", "profiled")  # PATTBET's pattern
  with pytest.raises(ValueError, match="chip kind 'random' is registered already, by RandomChip"):
    type("Again", (chips.RandomChip,), {}, kind="random", settings=("seed",))
  assert chip_models.KINDS["random"] is chips.RandomChip


def test_a_binary_builds_a_chip_of_any_kind_it_has_the_settings_for(tmp_path):
  path = str(tmp_path / "tiny.npz")
  _small_chip().save(path)
  assert repr(chip_models.build("random", seed=5, fraction_0to1=0.5)) == "RandomChip(seed=5)"
  assert chip_models.build("asymmetric", seed=5, fraction_0to1=0.25).name == "asymmetric_0.25_5"
  profiled = chip_models.build("profiled", "pattern_chip", seed=2, path=path)
  assert (profiled.name, profiled.seed, profiled.conditions) == ("tiny", 2, (0.8, 0.9))
  with pytest.raises(ValueError, match="pattern_chip.kind must be 'random' or 'profiled', got "
                                       "'asymmetric'"):
    chip_models.build("asymmetric", "pattern_chip", seed=2, path=path)
  with pytest.raises(ValueError, match="pattern_chip.path is required for kind='profiled'"):
    chip_models.build("profiled", "pattern_chip", seed=2, path=None)


def test_a_description_names_its_chip_unless_the_kind_names_chips_freely():
  for chip in (chips.RandomChip(3), chips.AsymmetricRandomChip(3, 0.75)):
    assert chip_models.name_of_description(chip.describe()) == chip.name
    assert type(chip).from_description(chip.describe()).describe() == chip.describe()
  assert chip_models.name_of_description(_small_chip().describe()) is None
  assert chip_models.name_of_description({"kind": "MyChip"}) is None
  with pytest.raises(KeyError, match="seed"):
    chip_models.name_of_description({"kind": "random"})


def test_default_chip_seeds_are_fixed_and_distinct():
  seeds = chips.default_chip_seeds()
  assert seeds == tuple(range(1000, 1050))
  assert chips.default_chip_seeds(3) == (1000, 1001, 1002)
  with pytest.raises(ValueError, match="num_chips"):
    chips.default_chip_seeds(0)


def test_a_simulated_chip_larger_than_the_limit_is_refused_before_allocation():
  started = time.perf_counter()
  with pytest.raises(ValueError, match=rf"rows x cols x voltages \(fault probabilities\) must "
                                       rf"be in \[0, {checks.MAX_CHIP_CELLS}\], got {2 * 10**18}"):
    chips.simulate_profiled_chip(10**9, 10**9, [0.8, 0.9], seed=0)
  assert time.perf_counter() - started < 1


def test_default_chip_seeds_are_bounded_before_anything_is_allocated():
  # 10**9 seeds allocated 24 GB before the limit (issue 23).
  started = time.perf_counter()
  for count in (10**9, 10**12, checks.MAX_CHIPS + 1):
    with pytest.raises(ValueError, match=rf"num_chips must be in \[1, {checks.MAX_CHIPS}\]"):
      chips.default_chip_seeds(count)
  assert time.perf_counter() - started < 1
  seeds = chips.default_chip_seeds(checks.MAX_CHIPS)
  assert len(seeds) == 10**6 and seeds[-1] == 1000 + 10**6 - 1


# Masks through the compiled op.


def test_random_chip_with_identical_seed_yields_identical_mask():
  _ops_or_skip()
  first = chips.RandomChip(5).masks(4096, 8, 0.05)
  second = chips.RandomChip(5).masks(4096, 8, 0.05)
  other = chips.RandomChip(6).masks(4096, 8, 0.05)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[0], other[0])
  assert not first[1].any() and not first[2].any()


def test_random_chip_errors_are_nested_across_rates_and_hit_rate_p():
  _ops_or_skip()
  chip = chips.RandomChip(11)
  num_bytes = 50000
  previous = np.zeros(num_bytes, np.uint8)
  for rate in (0.0, 0.001, 0.01, 0.05, 0.2):
    flip = chip.masks(num_bytes, 8, rate)[0]
    assert not np.any(previous & ~flip)  # Errors at a lower rate are a subset.
    bits = num_bytes * 8
    measured = _bits(flip).sum() / bits
    assert abs(measured - rate) <= 5 * np.sqrt(rate * (1 - rate) / bits) + 1e-12
    previous = flip
  assert np.all(chip.masks(100, 8, 1.0)[0] == 255)


def test_random_chip_leaves_bits_above_the_precision_alone():
  _ops_or_skip()
  flip = chips.RandomChip(2).masks(20000, 4, 0.3)[0]
  assert not np.any(flip & 0xF0)
  assert np.any(flip & 0x0F)


def test_random_chip_slice_at_an_offset_equals_the_slice_of_the_whole_memory():
  _ops_or_skip()
  chip = chips.RandomChip(4)
  whole = chip.masks(1000, 8, 0.1)[0]
  part = chip.masks(300, 8, 0.1, offset=8 * 700)[0]
  np.testing.assert_array_equal(part, whole[700:])


def test_asymmetric_chip_sets_and_clears_at_split_rates_nested_and_disjoint():
  _ops_or_skip()
  chip = chips.AsymmetricRandomChip(9, fraction_0to1=0.8)
  num_bytes = 50000
  bits = 8 * num_bytes
  previous_set = previous_clear = np.zeros(num_bytes, np.uint8)
  for rate in (0.01, 0.05, 0.1):
    flip, set_mask, clear_mask = chip.masks(num_bytes, 8, rate)
    assert not flip.any()
    assert not np.any(set_mask & clear_mask)
    assert not np.any(previous_set & ~set_mask) and not np.any(previous_clear & ~clear_mask)
    for mask, expected in ((set_mask, 0.8 * rate), (clear_mask, 0.2 * rate)):
      measured = _bits(mask).sum() / bits
      assert abs(measured - expected) <= 5 * np.sqrt(expected * (1 - expected) / bits)
    previous_set, previous_clear = set_mask, clear_mask


def _reference_profiled_masks(p0t1, p1t0, num_bytes, precision, offset):
  """Masks of a chip whose probabilities are all 0 or 1, straight from App. C.1's mapping."""
  cells = p0t1.size
  set_mask = np.zeros(num_bytes, np.uint8)
  clear_mask = np.zeros(num_bytes, np.uint8)
  for i in range(num_bytes):
    for b in range(precision):
      cell = (offset + 8 * i + b) % cells
      if p0t1.flat[cell] == 1:
        set_mask[i] |= 1 << b
      if p1t0.flat[cell] == 1:
        clear_mask[i] |= 1 << b
  return set_mask, clear_mask


@pytest.mark.parametrize("precision, offset", [(8, 0), (8, 8 * 3), (6, 8 * 37), (3, 8 * 1000),
                                               (8, 8 * 5 + 3)])
def test_profiled_masks_map_bits_linearly_and_wrap_around(precision, offset):
  _ops_or_skip()
  rng = np.random.default_rng(0)
  faults = rng.integers(0, 3, size=(1, 4, 16))  # 0 healthy, 1 stuck 0-to-1, 2 stuck 1-to-0.
  p0t1 = (faults == 1).astype(np.float32)
  p1t0 = (faults == 2).astype(np.float32)
  chip = chips.ProfiledChip("persistent", [0.85], p0t1, p1t0)
  num_bytes = 21  # 168 bits > 64 cells: wraps around more than twice.
  for seed in (0, 1, 123):
    flip, set_mask, clear_mask = chip.masks(num_bytes, precision, 0.85, offset=offset, seed=seed)
    expected_set, expected_clear = _reference_profiled_masks(p0t1[0], p1t0[0], num_bytes,
                                                             precision, offset)
    assert not flip.any()
    np.testing.assert_array_equal(set_mask, expected_set)
    np.testing.assert_array_equal(clear_mask, expected_clear)


def test_profiled_transient_faults_follow_the_seed_and_their_probability():
  _ops_or_skip()
  p0t1 = np.full((1, 64, 128), 0.3, np.float32)
  p1t0 = np.full((1, 64, 128), 0.1, np.float32)
  chip = chips.ProfiledChip("transient", [0.8], p0t1, p1t0, seed=3)
  num_bytes = 64 * 128 // 8
  first = chip.masks(num_bytes, 8, 0.8)
  again = chip.masks(num_bytes, 8, 0.8, seed=3)
  other = chip.with_seed(4).masks(num_bytes, 8, 0.8)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first[1], other[1])
  bits = 8 * num_bytes
  for mask, expected in ((first[1], 0.3), (first[2], 0.1)):
    assert abs(_bits(mask).sum() / bits - expected) <= 5 * np.sqrt(expected * (1 - expected) / bits)
  assert not np.any(first[1] & first[2])


def test_profiled_chip_without_faults_gives_all_zero_masks():
  _ops_or_skip()
  chip = chips.ProfiledChip("clean", [0.9], np.zeros((1, 32, 64)), np.zeros((1, 32, 64)))
  for mask in chip.masks(5000, 8, 0.9, offset=8 * 11):
    assert not mask.any()


# Simulator.


def _faulty(chip, voltage):
  p0t1, p1t0 = chip.probability_maps(voltage)
  return p0t1 + p1t0 > 0


@pytest.mark.parametrize("pattern", ["uniform", "columns"])
def test_simulated_faults_are_nested_with_fixed_direction_and_probability(pattern):
  chip = chips.simulate_profiled_chip(256, 64, [0.8, 0.82, 0.85], pattern=pattern,
                                      fraction_0to1=[0.6, 0.7, 0.8],
                                      persistent_fraction=0.3, seed=5)
  low, middle, high = chip.conditions
  for lower, higher in ((low, middle), (middle, high)):
    lower_maps, higher_maps = chip.probability_maps(lower), chip.probability_maps(higher)
    assert np.all(_faulty(chip, lower)[_faulty(chip, higher)])  # Subset.
    assert _faulty(chip, lower).sum() > _faulty(chip, higher).sum()
    for lower_map, higher_map in zip(lower_maps, higher_maps):
      still = higher_map > 0
      np.testing.assert_array_equal(lower_map[still], higher_map[still])  # Same direction, p.
  p0t1, p1t0 = chip.probability_maps(low)
  probabilities = np.concatenate([p0t1[p0t1 > 0], p1t0[p1t0 > 0]])
  transient = probabilities[probabilities < 1]
  assert transient.size > 0 and np.all(transient >= chips.TRANSIENT_PROBABILITY_RANGE[0])
  assert np.all(transient <= chips.TRANSIENT_PROBABILITY_RANGE[1])
  assert not np.any((p0t1 > 0) & (p1t0 > 0))


def test_identical_seed_yields_identical_simulated_chip():
  arguments = dict(rows=128, cols=64, voltages=[0.8, 0.85], pattern="columns", seed=8)
  first = chips.simulate_profiled_chip(**arguments)
  second = chips.simulate_profiled_chip(**arguments)
  other = chips.simulate_profiled_chip(**dict(arguments, seed=9))
  for voltage in first.conditions:
    for a, b in zip(first.probability_maps(voltage), second.probability_maps(voltage)):
      np.testing.assert_array_equal(a, b)
  assert not np.array_equal(first.probability_maps(0.8)[0], other.probability_maps(0.8)[0])


def test_simulated_rates_follow_the_requested_curve_and_shares():
  targets = {0.7: 0.06, 0.8: 0.02, 0.9: 0.004}
  chip = chips.simulate_profiled_chip(
      1024, 128, [0.7, 0.8, 0.9], rate_at=targets.__getitem__, fraction_0to1=[0.5, 0.6, 0.7],
      persistent_fraction=[0.4, 0.3, 0.2], seed=12)
  cells = chip.num_cells
  for (voltage, rate), share_0to1, share_persistent in zip(targets.items(), [0.5, 0.6, 0.7],
                                                           [0.4, 0.3, 0.2]):
    measured = chip.rates(voltage)
    # Sum of ~rate/0.5 * cells Bernoulli cells with probabilities of variance < 1/4: 6 sigma.
    slack = 6 * np.sqrt(2 * rate / cells)
    assert measured["p"] == pytest.approx(rate, abs=slack)
    assert measured["p_0t1"] == pytest.approx(share_0to1 * rate, abs=slack)
    assert measured["p_1t0"] == pytest.approx((1 - share_0to1) * rate, abs=slack)
    assert measured["p_sa"] == pytest.approx(share_persistent * rate, abs=slack)


def test_default_rate_curve_is_the_energy_model():
  chip = chips.simulate_profiled_chip(2048, 128, [0.8366], persistent_fraction=1.0, seed=1)
  expected = energy.rate_at_voltage(0.8366)
  assert chip.rates(0.8366)["p"] == pytest.approx(expected, abs=6 * np.sqrt(expected / 2 ** 18))
  assert chip.rates(0.8366)["p_sa"] == chip.rates(0.8366)["p"]  # All faults persistent.


def test_columns_pattern_puts_most_faults_into_few_columns():
  # At v = 0.8 (p ~ 4 %) about 6 % of the cells are faulty, none of the weak columns saturates.
  uniform = chips.simulate_profiled_chip(1024, 128, [0.8], seed=3)
  columns = chips.simulate_profiled_chip(1024, 128, [0.8], pattern="columns",
                                         column_concentration=0.9,
                                         weak_column_fraction=0.125, seed=3)

  def share_in_top_columns(chip):
    per_column = np.sort(_faulty(chip, 0.8).sum(axis=0))[::-1]
    return per_column[:16].sum() / per_column.sum()

  assert share_in_top_columns(columns) == pytest.approx(0.9, abs=0.03)
  assert share_in_top_columns(uniform) < 0.2  # 16 of 128 columns: 0.125 plus sorting bias.


@pytest.mark.parametrize("arguments, error, message", [
    (dict(pattern="rows"), ValueError, "pattern"),
    (dict(column_concentration=0.5), ValueError, "only apply to pattern='columns'"),
    (dict(pattern="columns", column_concentration=1.5), ValueError, "column_concentration"),
    (dict(pattern="columns", weak_column_fraction=0.0), ValueError, "weak_column_fraction"),
    (dict(voltages=[0.85, 0.8]), ValueError, "strictly increasing"),
    (dict(voltages=[0.0, 0.8]), ValueError, "> 0"),
    (dict(fraction_0to1=1.2), ValueError, "fraction_0to1"),
    (dict(fraction_0to1=[0.5, 0.5, 0.5]), ValueError, "one fraction per voltage"),
    (dict(persistent_fraction=[0.01, 1.0]), ValueError, "p_sa must not increase"),
    (dict(fraction_0to1=[0.01, 1.0]), ValueError, "p_0t1 must not increase"),
    (dict(rate_at=lambda v: 0.01 if v > 0.82 else 0.005), ValueError, "must not increase"),
    (dict(rate_at=lambda v: 1.0), ValueError, r"rate_at must give rates in \[0, 1\)"),
    (dict(rate_at=0.01), TypeError, "rate_at"),
    (dict(rows=0), ValueError, "rows"),
    (dict(seed=-3), ValueError, "seed"),
    (dict(pattern="columns", column_concentration=1.0, weak_column_fraction=0.03,
          rate_at=lambda v: 0.2, persistent_fraction=1.0), ValueError, "lets only"),
])
def test_simulator_rejects_bad_arguments(arguments, error, message):
  base = dict(rows=64, cols=32, voltages=[0.8, 0.85])
  with pytest.raises(error, match=message):
    chips.simulate_profiled_chip(**dict(base, **arguments))


# Presets (App. C.1 table).


@pytest.mark.parametrize("preset, shape", [("chip1", (2048, 128)), ("chip2", (8192, 128)),
                                           ("chip3", (8192, 128))])
def test_preset_statistics_match_the_app_c1_table(preset, shape):
  chip = chips.simulate_preset(preset)
  assert (chip.rows, chip.cols) == shape
  assert chip.name == preset
  table = chips.APP_C1_TABLE[preset]
  assert len(chip.conditions) == len(table)
  # Table rows go from the lowest voltage (highest rate) up, like chip.conditions.
  for voltage, row in zip(chip.conditions, table):
    measured = chip.rates(voltage)
    for key, paper_percent in zip(("p", "p_0t1", "p_1t0", "p_sa"), row):
      paper = paper_percent / 100
      tolerance = chips.PRESET_RELATIVE_TOLERANCE * paper + chips.PRESET_ABSOLUTE_TOLERANCE
      assert abs(measured[key] - paper) <= tolerance, (preset, voltage, key)


def test_column_presets_align_faults_along_columns_and_chip1_does_not():
  def top_column_share(chip):
    voltage = chip.conditions[0]
    per_column = np.sort(_faulty(chip, voltage).sum(axis=0))[::-1]
    return per_column[:16].sum() / per_column.sum()

  assert top_column_share(chips.simulate_preset("chip2")) > 0.6
  assert top_column_share(chips.simulate_preset("chip1")) < 0.2


def test_unknown_preset_is_rejected():
  with pytest.raises(ValueError, match="chip1"):
    chips.simulate_preset("chip4")


# The command line.


def _parse(*argv):
  flag_values = flags.FlagValues()
  simulate_chips_lib.define_flags(flag_values)
  flag_values(["simulate_chips", *argv])
  return flag_values


def test_flags_describe_an_explicit_chip():
  chip = simulate_chips_lib.chip_from_flags(_parse(
      "--rows=64", "--cols=32", "--voltages=0.8,0.85", "--pattern=columns",
      "--fraction_0to1=0.7", "--persistent_fraction=0.4,0.2", "--seed=4", "--name=mine"))
  expected = chips.simulate_profiled_chip(64, 32, [0.8, 0.85], pattern="columns",
                                          fraction_0to1=0.7, persistent_fraction=[0.4, 0.2],
                                          seed=4, name="mine")
  assert chip.name == "mine" and chip.conditions == (0.8, 0.85)
  np.testing.assert_array_equal(chip.probability_maps(0.8)[0], expected.probability_maps(0.8)[0])


def test_preset_flag_refuses_explicit_chip_flags():
  with pytest.raises(app.UsageError, match="--rows"):
    simulate_chips_lib.chip_from_flags(_parse("--preset=chip1", "--rows=5"))


def test_simulate_chips_binary_writes_chip_plots_and_rates(tmp_path):
  binary = REPO / "bin" / "simulate_chips"
  assert os.access(binary, os.X_OK)
  result = subprocess.run(
      [sys.executable, str(binary), "--preset=chip1", f"--output={tmp_path / 'c1.npz'}",
       f"--plot={tmp_path / 'plots'}"],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  loaded = chips.ProfiledChip.load(tmp_path / "c1.npz")
  expected = chips.simulate_preset("chip1")
  assert loaded.conditions == expected.conditions
  for voltage in expected.conditions:
    for a, b in zip(loaded.probability_maps(voltage), expected.probability_maps(voltage)):
      np.testing.assert_array_equal(a, b)
    assert (tmp_path / "plots" / f"chip1_v{voltage:.3f}.png").is_file()
    p_percent = 100 * expected.rates(voltage)["p"]
    assert f"{voltage:8.3f} {p_percent:8.4f}" in result.stdout


def test_simulate_chips_table_prints_energy_saved_in_percent_like_the_other_binaries():
  chip = chips.simulate_profiled_chip(16, 8, [0.811, 0.9], seed=1, name="small")
  lines = simulate_chips_lib.rates_table(chip).splitlines()
  assert lines[1].split()[-2:] == ["energy", "%"]
  # Energy per access scales with V^2 (Fig. 1): 0.811 V/Vmin saves 1 - 0.811^2 = 34.2 %.
  assert [line.split()[-1] for line in lines[2:4]] == ["34.2", "19.0"]
  assert "energy saved" in lines[-1]
