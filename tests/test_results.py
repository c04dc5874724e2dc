"""tfbet.results: result files read and re-write byte for byte; results of one evaluation go
together, others are refused in plain words; chips are named as their kind describes them."""
import json
import pathlib

import pytest

from tfbet import chip_models
from tfbet import evaluation
from tfbet import evaluation_plan
from tfbet import result_identity
from tfbet import results

# Written by tfbet before results.py was split out of evaluation.py (a toy model, 100 examples).
OLD_FILES = sorted((pathlib.Path(__file__).parent / "data" / "results").glob("*.json"))


def test_the_old_result_files_are_all_there():
  assert [path.stem for path in OLD_FILES] == [
      "asymmetric", "older_without_plan", "profiled", "random_partial_merge",
      "random_per_example", "random_shard1"]


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda path: path.stem)
def test_an_old_result_file_reads_and_rewrites_byte_for_byte(path, tmp_path):
  read = results.Results.from_json(str(path))
  read.to_json(str(tmp_path / "again.json"))
  read.to_csv(str(tmp_path / "again.csv"))
  assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
  assert (tmp_path / "again.csv").read_bytes() == path.with_suffix(".csv").read_bytes()


def test_old_files_hold_the_numbers_they_were_written_with():
  per_example = results.Results.from_json(str(OLD_FILES[4]))
  assert (per_example.n, per_example.clean_errors, per_example.per_example) == (100, 10, True)
  assert per_example.chip_names == ["random_1000", "random_1001", "random_1002"]
  assert per_example.conditions == [0.01, 0.1]
  assert sum(per_example.wrong[key].sum() for key in per_example.errors) == sum(
      per_example.errors.values())
  profiled = results.Results.from_json(str(OLD_FILES[2]))
  assert profiled.condition_kind == "voltage" and profiled.conditions == [0.8, 0.9]
  assert profiled.offsets("chip0", 0.8) == [0, 13]
  partial = results.Results.from_json(str(OLD_FILES[3]))
  assert partial.plan["num_shards"] == 1 and len(partial.missing()) == 2  # shard 0's chips


def test_the_moved_names_are_still_found_in_evaluation():
  assert evaluation.Results is results.Results and evaluation.merge is results.merge
  assert evaluation.make_plan is evaluation_plan.make_plan
  assert evaluation.shard is evaluation_plan.shard
  assert evaluation.data_difference is result_identity.data_difference
  assert evaluation.describe_model is result_identity.describe_model
  assert evaluation.MAX_COUNT == results.MAX_COUNT == 2**53
  assert evaluation.DATA_DIGEST_PREFIX == "examples-sha256:"


def _shard(index, rates=(0.01,), per_example=False):
  record = json.loads(OLD_FILES[5].read_text())  # shard 1 of 2, random chips, rate 0.05
  plan = record["plan"]
  plan["shard_index"] = index
  if rates != (0.05,):
    for entry in plan["chips"]:
      entry["conditions"] = list(rates)
  record["chips"] = {entry["name"]: entry["chip"]
                     for entry in evaluation_plan.shard(plan["chips"], 2, index)}
  record["entries"] = [{"chip": name, "condition": rate, "offset": 0, "errors": 11}
                       for name in record["chips"] for rate in rates]
  return results.Results.from_dict(record)


def test_shards_of_one_evaluation_merge_and_a_shard_of_another_plan_is_named():
  merged = results.merge([_shard(0), _shard(1)])
  assert merged.missing() == [] and len(merged.errors) == 3
  assert merged.summary()[0].mean == 0.11
  with pytest.raises(ValueError, match=r"b.json and a.json do not merge: b.json is not a shard "
                                       r"of the same evaluation as a.json: it plans chip "
                                       r"'random_1000' has rates \[0.02\] instead of \[0.01\]"):
    results.merge([_shard(0), _shard(1, rates=(0.02,))], ["a.json", "b.json"])


def test_an_interrupted_run_resumes_only_the_same_shard_of_the_same_evaluation():
  assert result_identity.evaluation_difference(_shard(1), _shard(1), "a", "b",
                                               same_shard=True) is None
  assert result_identity.evaluation_difference(_shard(0), _shard(1), "a", "b") is None
  assert result_identity.evaluation_difference(_shard(0), _shard(1), "a", "b",
                                               same_shard=True) == (
      "a is shard 0 of the evaluation, b shard 1")
  other = _shard(1)
  other.clean_errors -= 1
  assert result_identity.evaluation_difference(other, _shard(1), "a", "b") == (
      "clean errors differ: 9 vs 10 (one model on one test set counts the same)")


def test_a_result_names_random_chips_as_their_description_says():
  record = json.loads(OLD_FILES[1].read_text())  # without a plan: the chips name themselves
  record["chips"]["asymmetric_0.25_7"]["seed"] = 9
  with pytest.raises(ValueError, match=r"chip 'asymmetric_0.25_7' is described as .*'seed': 9.*, "
                                       r"which is chip 'asymmetric_0.25_9'"):
    results.Results.from_dict(record)


def test_a_new_chip_kind_registered_once_is_named_in_results(monkeypatch):
  monkeypatch.setattr(chip_models, "KINDS", dict(chip_models.KINDS))

  class StuckChip(chip_models.RandomChip, kind="stuck", settings=("seed",)):
    @property
    def name(self):
      return f"stuck_{self.seed}"

  assert chip_models.name_of_description({"kind": "stuck", "seed": 4}) == "stuck_4"
  plan, _ = evaluation_plan.make_plan([StuckChip(4)], [0.01])
  assert plan["chips"][0]["chip"] == {"kind": "stuck", "seed": 4}
  plan["chips"][0]["name"] = "stuck_5"
  with pytest.raises(ValueError, match="which is chip 'stuck_4'"):
    evaluation_plan.check_plan(plan, "rate")
