"""tfbet.evaluation on a toy quantized model, against eager numpy references and Prop. 1."""
import copy
import csv
import hashlib
import itertools
import json
import math
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tfbet import chips
from tfbet import evaluation
from tfbet import memory
from tfbet import quantize_configs
from tfbet.compat import keras

NUM_CLASSES = 5
NUM_EXAMPLES = 300
BATCH_SIZE = 64  # 300 = 4 * 64 + 44: the last batch is smaller.
WRONG_LABELS = 30  # Examples whose label disagrees with the clean prediction.


def _toy_model(seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((12,))
  x = keras.layers.Dense(32, activation="relu")(inputs)
  outputs = keras.layers.Dense(NUM_CLASSES)(x)
  return quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")


def _predictions(model, images):
  return np.argmax(model(images).numpy(), axis=-1)


@pytest.fixture(scope="module")
def toy():
  """A quantized model and data labeled by its clean predictions, 30 of them made wrong."""
  model = _toy_model()
  images = np.random.default_rng(0).normal(size=(NUM_EXAMPLES, 12)).astype(np.float32)
  labels = _predictions(model, images)
  labels[:WRONG_LABELS] = (labels[:WRONG_LABELS] + 1) % NUM_CLASSES
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH_SIZE)
  return model, images, labels, dataset


@pytest.fixture(scope="module")
def evaluator(toy):
  model, _, _, dataset = toy
  return evaluation.Evaluator(model, dataset)


def _random_chips(count, first=chips.FIRST_EVALUATION_SEED):
  return [chips.RandomChip(first + i) for i in range(count)]


def _loaded_flips(model):
  return np.concatenate([s.qvars["flip"].numpy().reshape(-1) for s in memory.layout(model).slots])


def test_clean_count_is_the_number_of_wrong_labels(evaluator):
  assert evaluator.n == NUM_EXAMPLES
  assert evaluator.clean_errors() == WRONG_LABELS


def test_rerr_at_zero_rate_equals_the_clean_error(evaluator):
  results = evaluator.run(_random_chips(3), [0.0], progress=None)
  assert results.clean_errors == WRONG_LABELS
  assert [results.errors[(c.name, 0.0, 0)] for c in _random_chips(3)] == [WRONG_LABELS] * 3
  assert results.summary()[0].mean == results.clean_error == WRONG_LABELS / NUM_EXAMPLES


def test_counts_equal_an_eager_numpy_reference_with_the_same_masks(toy, evaluator):
  model, images, labels, _ = toy
  chip_list = _random_chips(3)
  results = evaluator.run(chip_list, [0.02, 0.1], progress=None)
  for chip in chip_list:
    for rate in (0.02, 0.1):
      memory.load_chip(model, chip, rate)
      expected = int(np.sum(_predictions(model, images) != labels))
      assert results.errors[(chip.name, rate, 0)] == expected
  memory.clear_masks(model)


def test_masks_are_all_zero_after_an_evaluation(toy, evaluator):
  model, images, labels, _ = toy
  evaluator.run(_random_chips(2), [0.1], progress=None)
  assert not np.any(_loaded_flips(model))
  assert int(np.sum(_predictions(model, images) != labels)) == WRONG_LABELS


def test_flipped_bits_at_a_lower_rate_are_a_subset_and_cause_fewer_errors(toy, evaluator):
  model = toy[0]
  chip = chips.RandomChip(chips.FIRST_EVALUATION_SEED)
  memory.load_chip(model, chip, 0.01)
  low = _loaded_flips(model)
  memory.load_chip(model, chip, 0.05)
  high = _loaded_flips(model)
  memory.clear_masks(model)
  assert np.all((low & ~high) == 0)  # every bit flipped at 1 % is flipped at 5 %
  bits = lambda m: int(np.unpackbits(m).sum())
  assert 0 < bits(low) < bits(high)
  num_bits = 8 * memory.layout(model).num_weights
  assert abs(bits(high) / num_bits - 0.05) < 4 * math.sqrt(0.05 * 0.95 / num_bits)

  results = evaluator.run(_random_chips(10), [0.01, 0.05], progress=None)
  mean = {p: np.mean([results.errors[(c.name, p, 0)] for c in _random_chips(10)])
          for p in (0.01, 0.05)}
  assert WRONG_LABELS <= mean[0.01] < mean[0.05]


def test_forward_pass_is_traced_once_for_every_chip_and_batch_size(toy):
  model, _, _, dataset = toy
  evaluator = evaluation.Evaluator(model, dataset)  # batches of 64 and one of 44
  assert evaluator.trace_count == 0
  evaluator.run(_random_chips(3), [0.01, 0.1], progress=None)
  assert evaluator.trace_count == 1
  evaluator.run(_random_chips(2, first=7), [0.2], progress=None)
  evaluator.run([chips.AsymmetricRandomChip(5, 0.8)], [0.05], progress=None)
  assert evaluator.trace_count == 1


def test_two_shards_merged_equal_one_unsharded_run_count_for_count(toy):
  model, _, _, dataset = toy
  chip_list = _random_chips(6)
  rates = [0.005, 0.05]
  whole = evaluation.evaluate(model, dataset, chip_list, rates, progress=None)
  parts = [evaluation.evaluate(model, dataset, chip_list, rates, progress=None,
                               metadata={"shard_index": i}, num_shards=2, shard_index=i)
           for i in range(2)]
  assert [sorted(p.chips) for p in parts] == [
      [c.name for c in evaluation.shard(chip_list, 2, i)] for i in range(2)]
  assert {k[0] for k in parts[0].errors}.isdisjoint({k[0] for k in parts[1].errors})
  merged = evaluation.merge(parts)
  assert merged.errors == whole.errors
  assert merged.same_counts(whole)
  assert merged.to_dict()["entries"] == whole.to_dict()["entries"]
  assert "shard_index" not in merged.metadata  # the parts disagree on it


def test_merge_rejects_duplicates_and_results_of_another_model_or_test_set_in_plain_words(
    toy, evaluator):
  part = evaluator.run(_random_chips(2), [0.05], progress=None)
  with pytest.raises(ValueError, match="both shard 0"):
    evaluation.merge([part, part])
  other = evaluation.Results.from_dict(part.to_dict())
  other.clean_errors += 1
  with pytest.raises(ValueError, match="b.json and a.json do not merge: clean errors differ: "
                                       f"{part.clean_errors + 1} vs {part.clean_errors}"):
    evaluation.merge([part, other], ["a.json", "b.json"])
  cases = ((("model", {"digest": "0" * 64}), "model weights differ"),
           (("data", {"n": NUM_EXAMPLES + 1}),
            f"test set differs: {NUM_EXAMPLES + 1} vs {NUM_EXAMPLES} examples"),
           (("data", {"digest": evaluation.DATA_DIGEST_PREFIX + "0" * 64}),
            f"test set differs: {NUM_EXAMPLES} examples each, but other images, labels or order"),
           (("data", {"digest": "0" * 64}),
            "b.json was written by an older tfbet, whose test-set digest depended on the batch "
            "size, so nobody can tell whether the test sets agree: evaluate it again"))
  for (field, change), message in cases:
    record = part.to_dict()
    record[field] = dict(record[field], **change)
    with pytest.raises(ValueError, match="b.json and a.json do not merge: " + message):
      evaluation.merge([part, evaluation.Results.from_dict(record)], ["a.json", "b.json"])
  with pytest.raises(ValueError, match="at least one"):
    evaluation.merge([])


def test_shards_evaluated_at_batch_sizes_32_and_50_merge_into_the_counts_of_one_run(toy):
  model, images, labels, dataset = toy
  chip_list = _random_chips(4)
  whole = evaluation.evaluate(model, dataset, chip_list, [0.05], progress=None)

  def batched(size):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(size)

  parts = [evaluation.evaluate(model, batched(size), chip_list, [0.05], progress=None,
                               num_shards=2, shard_index=index)
           for index, size in enumerate((32, 50))]
  merged = evaluation.merge([evaluation.Results.from_dict(p.to_dict()) for p in parts],
                            ["b32.json", "b50.json"])
  assert merged.same_counts(whole)


def test_the_data_digest_is_of_the_examples_their_order_and_labels_not_of_the_batches(toy):
  model, images, labels, _ = toy

  def digest(images, labels, size):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(size)
    return evaluation.Evaluator(model, dataset).data_digest

  reference = hashlib.sha256(json.dumps(list(images.shape[1:])).encode())
  reference.update(hashlib.sha256(images.astype(np.float32).tobytes()).digest())
  reference.update(hashlib.sha256(labels.astype(np.int64).tobytes()).digest())
  expected = evaluation.DATA_DIGEST_PREFIX + reference.hexdigest()
  assert digest(images, labels, 32) == digest(images, labels, 50) == digest(
      images, labels, NUM_EXAMPLES) == expected
  changed_label = labels.copy()
  changed_label[-1] = (changed_label[-1] + 1) % NUM_CLASSES
  swapped = np.concatenate([images[1:2], images[:1], images[2:]])
  assert len({expected, digest(images, changed_label, 50),
              digest(swapped, labels, 50)}) == 3


@pytest.fixture(scope="module")
def shard_records(evaluator):
  """The two shards of 4 random chips at p = 1 %, 10 %, as JSON records (edited by the tests)."""
  return [evaluator.run(_random_chips(4), [0.01, 0.1], progress=None, num_shards=2,
                        shard_index=i).to_dict() for i in range(2)]


def _parts(records):
  return [evaluation.Results.from_dict(copy.deepcopy(r), source=f"s{i}.json")
          for i, r in enumerate(records)]


def _merge(records, **kwargs):
  return evaluation.merge(_parts(records), [f"s{i}.json" for i in range(len(records))], **kwargs)


def test_complete_shards_merge_and_the_merged_result_is_complete(shard_records):
  merged = _merge(shard_records)
  assert merged.missing() == []
  assert merged.chip_names == [f"random_{1000 + i}" for i in range(4)]
  assert len(merged.errors) == 4 * 2
  assert merged.plan["num_shards"] == 1 and merged.plan["shard_index"] == 0
  # The merged file is a complete plan of its own and merges (alone) again.
  assert evaluation.merge([evaluation.Results.from_dict(merged.to_dict())]).same_counts(merged)


def test_a_missing_shard_is_refused_unless_a_partial_merge_is_asked_for(shard_records):
  with pytest.raises(ValueError, match=r"shard\(s\) \[1\] of 2 are missing"):
    _merge(shard_records[:1])
  partial = _merge(shard_records[:1], allow_partial=True)
  assert sorted({key[0] for key in partial.missing()}) == ["random_1001", "random_1003"]
  assert partial.describe_missing().startswith("4 of 8 planned counts are missing, of 2 chip(s)")
  # A partial result is not a complete shard: merging it again needs the flag again.
  with pytest.raises(ValueError, match="incomplete"):
    evaluation.merge([evaluation.Results.from_dict(partial.to_dict())])


def test_shards_of_another_evaluation_are_refused_naming_the_file_and_the_difference(evaluator,
                                                                                   shard_records):
  cases = {
      "asymmetric": evaluator.run([chips.AsymmetricRandomChip(1000 + i, 0.5) for i in range(4)],
                                  [0.01, 0.1], progress=None, num_shards=2, shard_index=1),
      "other rates": evaluator.run(_random_chips(4), [0.01, 0.2], progress=None, num_shards=2,
                                   shard_index=1),
      "more chips": evaluator.run(_random_chips(6), [0.01, 0.1], progress=None, num_shards=2,
                                  shard_index=1),
      "more shards": evaluator.run(_random_chips(4), [0.01, 0.1], progress=None, num_shards=3,
                                   shard_index=1),
  }
  expected = {"asymmetric": "4 chips instead of 4; chips \\['asymmetric_0.5_1000'",
              "other rates": "chip 'random_1000' has rates \\[0.01, 0.2\\] instead of "
                             "\\[0.01, 0.1\\]",
              "more chips": "6 chips instead of 4", "more shards": "num_shards 3 instead of 2"}
  for name, other in cases.items():
    with pytest.raises(ValueError, match="s1.json is not a shard of the same evaluation as "
                                         "s0.json: it plans " + expected[name]):
      evaluation.merge([_parts(shard_records)[0], other], ["s0.json", "s1.json"])


def test_edited_files_are_refused(shard_records):
  # An entry for a chip the file does not list.
  record = copy.deepcopy(shard_records[1])
  record["entries"].append({"chip": "random_1000", "condition": 0.01, "offset": 0, "errors": 3})
  with pytest.raises(ValueError, match="s1.json: .*not one of the chips|s1.json: .*do not list"):
    _merge([shard_records[0], record])
  # An entry outside the plan (another rate or offset).
  for key, value in (("condition", 0.05), ("offset", 8)):
    record = copy.deepcopy(shard_records[1])
    record["entries"].append(dict(record["entries"][0], **{key: value}))
    with pytest.raises(ValueError, match="s1.json: .*is not in the plan"):
      _merge([shard_records[0], record])
  # An edited chip seed: in the chip list, in the plan, or in both of one file.
  record = copy.deepcopy(shard_records[1])
  record["chips"]["random_1001"]["seed"] = 1005
  with pytest.raises(ValueError, match="s1.json: .*random_1001.* described as"):
    _merge([shard_records[0], record])
  record["plan"]["chips"][1]["chip"]["seed"] = 1005
  with pytest.raises(ValueError, match="s1.json: .*which is chip 'random_1005'"):
    _merge([shard_records[0], record])
  # A removed count.
  record = copy.deepcopy(shard_records[1])
  del record["entries"][-1]
  with pytest.raises(ValueError, match="s1.json is incomplete: 1 of 4 planned counts"):
    _merge([shard_records[0], record])
  # A file without a plan (older tfbet) reads, but does not merge.
  record = copy.deepcopy(shard_records[1])
  del record["plan"]
  assert evaluation.Results.from_dict(record).plan is None
  with pytest.raises(ValueError, match="s1.json has no plan"):
    _merge([shard_records[0], record])


def test_a_shard_that_selects_no_chips_is_refused(evaluator):
  with pytest.raises(ValueError, match="shard 3 of 4 selects no chips"):
    evaluator.run(_random_chips(3), [0.1], progress=None, num_shards=4, shard_index=3)
  with pytest.raises(ValueError, match="chips must not be empty"):
    evaluator.run([], [0.1], progress=None)


def test_plan_sizes_are_bounded_before_the_plan_is_built(evaluator, monkeypatch):
  for name, limit in (("MAX_CHIPS", 3), ("MAX_CONDITIONS", 2), ("MAX_OFFSETS", 2),
                      ("MAX_PLAN_ENTRIES", 5), ("MAX_SHARDS", 2)):
    monkeypatch.setattr(evaluation.checks, name, limit)
  endless = (chips.RandomChip(seed) for seed in itertools.count())
  cases = [
      (dict(chips=endless), "chips must have at most 3 items, got more"),
      (dict(conditions=[0.1, 0.2, 0.3]), "conditions must have at most 2 items, got 3"),
      (dict(offsets=range(0, 800, 8)), "offsets must have at most 2 items, got 100"),
      (dict(conditions=[0.1, 0.2], offsets=[0, 8]),
       r"at most 5 entries, got more by chip 'random_1001'"),
      (dict(num_shards=10**12), r"num_shards must be in \[1, 2\], got 1000000000000"),
  ]
  for arguments, message in cases:
    arguments = {"chips": _random_chips(2), "conditions": [0.1], **arguments}
    with pytest.raises(ValueError, match=message):
      evaluation.make_plan(**arguments)
  with pytest.raises(ValueError, match="chips must have at most 3 items"):
    evaluator.run(_random_chips(4), [0.1], progress=None)


def test_sizes_in_a_result_files_plan_are_bounded(shard_records, monkeypatch):
  # merge() builds the set of shard indices of the plan: 10**12 of them hung before.
  record = copy.deepcopy(shard_records[0])
  record["plan"]["num_shards"] = 10**12
  with pytest.raises(ValueError, match=rf"plan num_shards must be in \[1, {10**6}\]"):
    evaluation.Results.from_dict(record)
  monkeypatch.setattr(evaluation.checks, "MAX_CHIPS", 4)  # the plan's chips: 4
  record = copy.deepcopy(shard_records[0])
  record["plan"]["chips"] *= 2
  with pytest.raises(ValueError, match="plan chips must have at most 4 items, got 8"):
    evaluation.Results.from_dict(record)
  monkeypatch.setattr(evaluation.checks, "MAX_CONDITIONS", 1)
  with pytest.raises(ValueError, match="plan chip 'random_1000': conditions must have at most 1"):
    evaluation.Results.from_dict(copy.deepcopy(shard_records[0]))


def test_a_deeply_nested_result_file_is_a_clear_error(tmp_path):
  path = tmp_path / "deep.json"
  path.write_text("[" * 100000 + "]" * 100000)
  with pytest.raises(ValueError, match="deep.json.*nested too deeply"):
    evaluation.Results.from_json(str(path))


class _Interrupt(Exception):
  pass


def test_an_interrupted_run_resumes_to_the_counts_of_an_uninterrupted_one(evaluator):
  chip_list, rates = _random_chips(5), [0.01, 0.1]
  whole = evaluator.run(chip_list, rates, progress=None)
  saved = []

  def interrupt_after_two_chips(partial):
    saved.append(partial.to_dict())  # What bin/eval writes to its partial file.
    if len(saved) == 2:
      raise _Interrupt()

  with pytest.raises(_Interrupt):
    evaluator.run(chip_list, rates, progress=None, checkpoint=interrupt_after_two_chips)
  partial = evaluation.Results.from_dict(saved[-1])
  assert sorted({key[0] for key in partial.errors}) == ["random_1000", "random_1001"]
  assert len(partial.missing()) == 3 * 2
  events = []
  resumed = evaluator.run(chip_list, rates, progress=events.append, resume=partial)
  assert [(e.index, e.resumed) for e in events] == [(2, 2), (3, 2), (4, 2)]  # 2 chips taken over
  assert resumed.same_counts(whole) and resumed.missing() == []
  assert resumed.to_dict()["entries"] == whole.to_dict()["entries"]
  # Counts of another evaluation are never taken over.
  with pytest.raises(ValueError, match="cannot resume: the earlier partial result is not a shard "
                                       "of the same evaluation as this run: it plans"):
    evaluator.run(chip_list, [0.01, 0.2], progress=None, resume=partial)
  with pytest.raises(ValueError, match="cannot resume"):
    evaluator.run(_random_chips(5, first=7), rates, progress=None, resume=partial)


def test_model_digest_changes_with_the_weights(toy):
  model = _toy_model(seed=1)
  first = evaluation.model_digest(memory.layout(model))
  assert evaluation.model_digest(memory.layout(model)) == first
  weights = model.get_weights()
  weights[0] = weights[0] + 0.5
  model.set_weights(weights)
  assert evaluation.model_digest(memory.layout(model)) != first


def test_json_and_csv_keep_every_count(tmp_path, evaluator):
  results = evaluator.run(_random_chips(3), [0.001, 0.1], progress=None,
                          metadata={"note": "round trip"})
  path = results.to_json(str(tmp_path / "r.json"))
  loaded = evaluation.Results.from_json(path)
  assert loaded.same_counts(results)
  assert loaded.metadata == {"note": "round trip"}
  assert loaded.conditions == [0.001, 0.1]  # floats survive exactly
  assert loaded.chips["random_1000"] == {"kind": "random", "seed": 1000}

  with open(results.to_csv(str(tmp_path / "r.csv")), newline="") as f:
    rows = list(csv.DictReader(f))
  assert rows[0]["chip"] == "clean" and int(rows[0]["errors"]) == results.clean_errors
  from_csv = {(r["chip"], float(r["rate"]), int(r["offset"])): int(r["errors"]) for r in rows[1:]}
  assert from_csv == results.errors
  assert all(int(r["n"]) == NUM_EXAMPLES for r in rows)


def test_results_state_the_share_of_parameters_in_faulty_memory(tmp_path, evaluator):
  results = evaluator.run(_random_chips(1), [0.01], progress=None)
  loaded = evaluation.Results.from_json(results.to_json(str(tmp_path / "r.json")))
  weights = 12 * 32 + 32 + 32 * NUM_CLASSES + NUM_CLASSES
  assert loaded.model["coverage"] == {"faulty_parameters": weights, "trainable_parameters":
                                      weights, "parameters": weights, "faulty_share": 1.0}
  assert loaded.faulty_share == 1.0
  assert evaluation.describe_model(loaded.model).endswith(
      f"{weights} of {weights} parameters (100.00 %) in faulty memory")


def test_reading_a_file_that_is_not_a_result_names_it(tmp_path):
  path = tmp_path / "bad.json"
  path.write_text('{"format": "something else"}')
  with pytest.raises(ValueError, match="bad.json"):
    evaluation.Results.from_json(str(path))
  record = {"format": evaluation.FORMAT, "model": {"digest": "x"}, "data": {"n": 10, "digest": "d"},
            "clean_errors": 1, "condition_kind": "rate", "chips": {"a": {"kind": "custom"}},
            "entries": [{"chip": "a", "condition": 0.1, "offset": 0, "errors": 11}]}
  with pytest.raises(ValueError, match="errors must be in"):
    evaluation.Results.from_dict(record)


def test_summary_equals_statistics_computed_with_numpy_from_the_counts(evaluator):
  chip_list = _random_chips(5)
  results = evaluator.run(chip_list, [0.02, 0.2], progress=None)
  rows = results.summary(delta=0.05)
  assert [row.condition for row in rows] == [0.02, 0.2]
  for row in rows:
    rerr = np.array([results.errors[(c.name, row.condition, 0)] for c in chip_list]) / NUM_EXAMPLES
    assert row.num_chips == row.num_patterns == 5
    np.testing.assert_allclose([row.mean, row.std, row.min, row.max],
                               [rerr.mean(), rerr.std(), rerr.min(), rerr.max()], rtol=1e-12)
    excess = math.sqrt(math.log((NUM_EXAMPLES + 1) / 0.05) / NUM_EXAMPLES) * (
        math.sqrt(5) + math.sqrt(NUM_EXAMPLES)) / math.sqrt(5)
    assert row.excess == pytest.approx(excess, rel=1e-12)
    assert row.bound == pytest.approx(min(1, rerr.mean() + excess), rel=1e-12)
    assert row.vacuous == (rerr.mean() + excess >= 1)


def test_prop1_excess_gives_the_papers_figures():
  # App. C.2 / G.6: n = 10k test examples, l = 1M patterns, probability 99 % -> 4.1 %;
  # n = 100k -> 1.7 %.
  assert round(100 * evaluation.prop1_excess(10**4, 10**6, delta=0.01), 1) == 4.1
  assert round(100 * evaluation.prop1_excess(10**5, 10**6, delta=0.01), 1) == 1.7
  assert evaluation.prop1_excess(10**4, 10**6) == evaluation.prop1_excess(10**4, 10**6, 0.01)
  # l -> infinity leaves sqrt(log((n + 1) / delta) / n).
  assert evaluation.prop1_excess(100, 10**12) == pytest.approx(
      math.sqrt(math.log(101 / 0.01) / 100), rel=2e-5)  # factor 1 + sqrt(n / l) = 1 + 1e-5


@pytest.mark.parametrize("args, error", [
    ((0, 10), ValueError), ((10, 0), ValueError), ((10, 10, 0.0), ValueError),
    ((10, 10, 1.0), ValueError), ((10.5, 10), TypeError), ((10, True), TypeError)])
def test_prop1_excess_rejects_arguments_out_of_range(args, error):
  with pytest.raises(error):
    evaluation.prop1_excess(*args)


def test_profiled_chips_average_rerr_over_offsets_at_their_own_voltages(evaluator):
  chip = chips.simulate_profiled_chip(8, 64, [0.82, 0.86], seed=4, name="tiny_map")
  offsets = lambda c: [0, c.num_cells // 2]
  results = evaluator.run([chip], offsets=offsets, progress=None)
  assert results.condition_kind == "voltage"
  assert results.conditions == [0.82, 0.86]
  for voltage in (0.82, 0.86):
    counts = [results.errors[("tiny_map", voltage, o)] for o in (0, 256)]
    assert results.rerr("tiny_map", voltage) == pytest.approx(np.mean(counts) / NUM_EXAMPLES)
    assert results.summary()[results.conditions.index(voltage)].num_patterns == 2
  described = results.chips["tiny_map"]
  assert described["kind"] == "profiled"
  assert described["rates"][0]["p"] == pytest.approx(chip.rates(0.82)["p"])


def test_run_reports_progress_once_per_chip(evaluator):
  events = []
  evaluator.run(_random_chips(3), [0.01, 0.1], progress=events.append)
  assert [(e.index, e.total, e.chip) for e in events] == [
      (i, 3, f"random_{1000 + i}") for i in range(3)]
  assert set(events[0].errors) == {(0.01, 0), (0.1, 0)}
  assert events[0].elapsed <= events[-1].elapsed


def test_bad_chips_and_conditions_are_rejected(evaluator):
  with pytest.raises(ValueError, match="chip names must be distinct"):
    evaluator.run([chips.RandomChip(1), chips.RandomChip(1)], [0.1], progress=None)
  profiled = chips.simulate_profiled_chip(8, 64, [0.85], seed=0, name="p")
  with pytest.raises(ValueError, match="all random"):
    evaluator.run([chips.RandomChip(1), profiled], [0.1], progress=None)
  with pytest.raises(ValueError, match=r"condition \(bit error rate p\) must be a finite number "
                                       r"in \[0.0, 1.0\], got 1.5"):
    evaluator.run([chips.RandomChip(1)], [1.5], progress=None)
  with pytest.raises(ValueError, match="no conditions of its own"):
    evaluator.run([chips.RandomChip(1)], progress=None)
  with pytest.raises(ValueError, match="distinct"):
    evaluator.run([chips.RandomChip(1)], [0.1, 0.1], progress=None)


def test_an_empty_test_set_is_rejected(toy):
  model = toy[0]
  empty = tf.data.Dataset.from_tensor_slices(
      (np.zeros((0, 12), np.float32), np.zeros((0,), np.int64))).batch(4)
  with pytest.raises(ValueError, match="at least one test example"):
    evaluation.Evaluator(model, empty)


@pytest.mark.parametrize("bad, error, message", [
    # Float labels are refused at their first batch; the first fraction in it is named.
    (0.5, TypeError, r"integer class indices in \[0, 5\), got float64 labels; the first not a "
     r"whole number is 0.5 \(example 6\)"),
    (np.nan, TypeError, r"integer class indices in \[0, 5\), got float64 labels; the first not "
     r"a whole number is nan \(example 6\)"),
    # Example 70 is the 7th of the second batch: the index counts over the whole test set.
    (99, ValueError, r"class indices in \[0, 5\) \(the model's 5 outputs\), got 99 "
     r"\(example 70\)"),
    (-1, ValueError, r"class indices in \[0, 5\) \(the model's 5 outputs\), got -1 "
     r"\(example 70\)"),
    (5, ValueError, r"class indices in \[0, 5\) \(the model's 5 outputs\), got 5 "
     r"\(example 70\)"),
])
def test_labels_that_are_not_class_indices_of_the_model_are_refused_naming_the_first(
    toy, bad, error, message):
  model, images, labels, _ = toy
  labels = labels.astype(type(bad)).copy()
  first = 6 if isinstance(bad, float) else 70
  labels[[first, 200]] = bad
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH_SIZE)
  with pytest.raises(error, match="dataset labels must be " + message + "$"):
    evaluation.Evaluator(model, dataset)


def test_float_labels_are_refused_even_when_whole_and_integer_ones_of_any_width_count_alike(
    toy, evaluator):
  model, images, labels, _ = toy
  floats = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.float32))).batch(64)
  with pytest.raises(TypeError, match=r"integer class indices in \[0, 5\), got float32 labels$"):
    evaluation.Evaluator(model, floats)
  for dtype in (np.uint8, np.int32):
    narrow = tf.data.Dataset.from_tensor_slices((images, labels.astype(dtype))).batch(BATCH_SIZE)
    other = evaluation.Evaluator(model, narrow)
    assert other.clean_errors() == WRONG_LABELS
    assert other.data_digest == evaluator.data_digest


def test_shards_are_disjoint_deterministic_and_cover_everything():
  items = list(range(11))
  parts = [evaluation.shard(items, 3, i) for i in range(3)]
  assert sorted(sum(parts, [])) == items
  assert parts[1] == [1, 4, 7, 10] == evaluation.shard(items, 3, 1)
  with pytest.raises(ValueError, match="shard_index"):
    evaluation.shard(items, 3, 3)
  with pytest.raises(ValueError, match="num_shards"):
    evaluation.shard(items, 0, 0)


def test_natural_order_puts_numbers_in_numeric_order():
  names = ["random_1000", "random_999", "chip2", "chip10"]
  assert sorted(names, key=evaluation.natural_key) == [
      "chip2", "chip10", "random_999", "random_1000"]


def test_a_rate_above_one_half_is_refused_unless_allowed(evaluator):
  with pytest.raises(ValueError, match="looks like a percent"):
    evaluator.run(_random_chips(1), [1], progress=None)
  results = evaluator.run(_random_chips(1), [0.75], progress=None, allow_high_rate=True)
  assert results.conditions == [0.75]


def test_per_example_errors_name_the_examples_a_numpy_reference_misclassifies(toy, evaluator,
                                                                              tmp_path):
  model, images, labels, _ = toy
  chip_list = _random_chips(3)
  results = evaluator.run(chip_list, [0.02, 0.1], progress=None, per_example=True)
  assert results.per_example
  np.testing.assert_array_equal(results.clean_wrong, _predictions(model, images) != labels)
  for chip in chip_list:
    for rate in (0.02, 0.1):
      memory.load_chip(model, chip, rate)
      expected = _predictions(model, images) != labels
      np.testing.assert_array_equal(results.wrong[(chip.name, rate, 0)], expected)
      assert results.errors[(chip.name, rate, 0)] == int(expected.sum())
  memory.clear_masks(model)
  assert results.wrong_matrix(0.1).shape == (3, 1, NUM_EXAMPLES)
  # The counts are the same as without per-example recording, and the file keeps the examples.
  plain = evaluator.run(chip_list, [0.02, 0.1], progress=None)
  assert plain.errors == results.errors and not plain.per_example
  path = str(tmp_path / "r.json")
  results.to_json(path)
  again = evaluation.Results.from_json(path)
  assert again.same_counts(results) and again.per_example
  assert not again.same_counts(plain)


def test_per_example_errors_merge_and_resume_with_their_counts(evaluator):
  chip_list, rates = _random_chips(4), [0.05]
  whole = evaluator.run(chip_list, rates, progress=None, per_example=True)
  shards = [evaluator.run(chip_list, rates, progress=None, per_example=True, num_shards=2,
                          shard_index=i) for i in range(2)]
  assert evaluation.merge(shards).same_counts(whole)
  saved = []

  def interrupt(partial):
    saved.append(partial.to_dict())
    if len(saved) == 2:
      raise _Interrupt()

  with pytest.raises(_Interrupt):
    evaluator.run(chip_list, rates, progress=None, per_example=True, checkpoint=interrupt)
  partial = evaluation.Results.from_dict(saved[-1])
  resumed = evaluator.run(chip_list, rates, progress=None, per_example=True, resume=partial)
  assert resumed.same_counts(whole)
  # A partial file without per-example errors is not taken over by a per-example run.
  with pytest.raises(ValueError, match="cannot resume: per-example clean errors differ"):
    evaluator.run(chip_list, rates, progress=None, per_example=True,
                  resume=evaluator.run(chip_list, rates, progress=None))
  plain = evaluator.run(chip_list, rates, progress=None, num_shards=2, shard_index=1)
  with pytest.raises(ValueError, match="per-example clean errors"):
    evaluation.merge([shards[0], plain])


def test_per_example_errors_that_disagree_with_their_counts_are_refused(evaluator):
  results = evaluator.run(_random_chips(1), [0.05], progress=None, per_example=True)
  record = results.to_dict()
  broken = copy.deepcopy(record)
  broken["entries"][0]["errors"] += 1
  with pytest.raises(ValueError, match="marks .* misclassified examples but the count is"):
    evaluation.Results.from_dict(broken)
  broken = copy.deepcopy(record)
  broken["entries"][0]["wrong"] = "not base64!"
  with pytest.raises(ValueError, match="not valid base64"):
    evaluation.Results.from_dict(broken)
  broken = copy.deepcopy(record)
  broken["entries"][0]["wrong"] = record["clean_wrong"][:8]
  with pytest.raises(ValueError, match="bytes, 38 expected"):
    evaluation.Results.from_dict(broken)
  broken = copy.deepcopy(record)
  del broken["entries"][0]["wrong"]
  with pytest.raises(ValueError, match="every entry exactly when clean_wrong is given"):
    evaluation.Results.from_dict(broken)


def test_progress_line_shows_mean_rerr_over_offsets_per_condition_and_the_time_left():
  rates = evaluation.ChipProgress(index=1, total=5, chip="random_1001", n=200, elapsed=6.0,
                                  errors={(0.01, 0): 20, (0.001, 0): 4})
  assert rates.line() == ("[2/5] random_1001 RErr p=0.1%:2.00% p=1%:10.00% "
                          "(6.0 s elapsed, ~9 s left)")  # 3 s per chip, 3 chips to go.
  voltages = evaluation.ChipProgress(index=0, total=1, chip="chip1", n=100, elapsed=1.0,
                                     errors={(0.8, 0): 30, (0.8, 64): 10},
                                     condition_kind="voltage")
  assert voltages.line() == "[1/1] chip1 RErr V=0.8:20.00% (1.0 s elapsed, ~0 s left)"


# Every field of a result file that the readers use, as a path into the JSON record, whether a
# file may lack it (files of older versions; the readers then say "not recorded"), and a value
# of the wrong type for it.
USED_FIELDS = {
    "data.n": (("data", "n"), False, "12"),
    "data.digest": (("data", "digest"), False, 12),
    "clean_errors": (("clean_errors",), False, "12"),
    "entries[0].errors": (("entries", 0, "errors"), False, "12"),
    "entries[0].condition": (("entries", 0, "condition"), False, "0.01"),
    "entries[0].offset": (("entries", 0, "offset"), False, "0"),
    "model.digest": (("model", "digest"), False, 12),
    "model.name": (("model", "name"), True, 12),
    "model.num_weights": (("model", "num_weights"), True, "90"),
    "model.coverage": (("model", "coverage"), True, "90 %"),
    "model.coverage.faulty_parameters": (("model", "coverage", "faulty_parameters"), False, "90"),
    "model.coverage.trainable_parameters": (("model", "coverage", "trainable_parameters"), False,
                                            "100"),
    "model.coverage.parameters": (("model", "coverage", "parameters"), False, "100"),
    "model.coverage.faulty_share": (("model", "coverage", "faulty_share"), False, "0.9"),
}
MISSING = object()
WRONG_TYPE = object()
BAD_VALUES = {"missing": MISSING, "wrong type": WRONG_TYPE, "nan": math.nan, "+inf": math.inf,
              "-inf": -math.inf, "huge integer": 10**400}
READERS = ("compare", "energy_budget", "eval --merge", "reproduction report")


def _complete_record():
  """A per-example result of 2 chips at p = 1 %, 10 % on 100 examples, as the binaries write."""
  rng = np.random.default_rng(5)
  chip_list = _random_chips(2)
  plan, _ = evaluation.make_plan(chip_list, [0.01, 0.1])
  clean = rng.random(100) < 0.05
  model = {"name": "m", "digest": "ab" * 32, "num_weights": 90, "scheme": {"precision": 8},
           "coverage": {"faulty_parameters": 90, "trainable_parameters": 100, "parameters": 100,
                        "faulty_share": 0.9}}
  results = evaluation.Results(model=model, n=100,
                               data_digest=evaluation.DATA_DIGEST_PREFIX + "cd" * 32,
                               clean_errors=int(clean.sum()), condition_kind="rate",
                               chips={c.name: c.describe() for c in chip_list}, plan=plan,
                               clean_wrong=clean)
  for chip in chip_list:
    for rate in (0.01, 0.1):
      wrong = clean | (rng.random(100) < rate)
      results.add(chip.name, rate, 0, int(wrong.sum()), wrong=wrong)
  return results.to_dict()


def _run_binary_main(lib, argv, monkeypatch):
  """``lib.main`` as its binary runs it (flags parsed into a fresh FlagValues), in-process."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FlagValues()
  lib.define_flags(flag_values)
  remaining = flag_values(argv)
  monkeypatch.setattr(flags, "FLAGS", flag_values)
  return lib.main(remaining)


def _read_with(reader, path, tmp_path, monkeypatch):
  """Runs ``reader`` on the result file ``path``; a refusal raises UsageError / ValueError."""
  from tfbet.cli import compare_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import energy_budget_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import reproduce_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import reproduction_report  # pylint: disable=g-import-not-at-top
  if reader == "compare":
    return _run_binary_main(compare_lib, ["compare", path], monkeypatch)
  if reader == "energy_budget":
    return _run_binary_main(energy_budget_lib, ["energy_budget", path], monkeypatch)
  if reader == "eval --merge":
    return _run_binary_main(eval_lib, ["eval", "--merge", path,
                                       f"--output={tmp_path / 'merged.json'}"], monkeypatch)
  run = reproduce_lib.Run("m", "M", ("a.gin",))
  suite = reproduce_lib.Suite(name="s", description="One run.", runs=(run,), rates=(1, 10),
                              num_chips=2, test_limit=None,
                              tables=({"title": "T", "runs": ["m"]},), figure_runs=("m",),
                              figure_families={"M": ["m"]})
  run_dir = run.directory(str(tmp_path / "runs"), 0)
  os.makedirs(run_dir)
  os.replace(path, os.path.join(run_dir, "eval_random.json"))
  with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as f:
    json.dump({"num_weights": 90, "test_error": 0.05}, f)
  return reproduction_report.write_report(suite, str(tmp_path / "runs"),
                                          str(tmp_path / "report.md"))


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("bad", BAD_VALUES)
@pytest.mark.parametrize("field", USED_FIELDS)
def test_every_used_result_field_that_is_missing_mistyped_or_not_finite_is_refused_by_name(
    field, bad, reader, tmp_path, monkeypatch, capsys):
  from absl import app  # pylint: disable=g-import-not-at-top
  record = _complete_record()
  keys, may_lack, wrong_type = USED_FIELDS[field]
  parent = record
  for key in keys[:-1]:
    parent = parent[key]
  if BAD_VALUES[bad] is MISSING:
    del parent[keys[-1]]
  else:
    parent[keys[-1]] = wrong_type if BAD_VALUES[bad] is WRONG_TYPE else BAD_VALUES[bad]
  path = str(tmp_path / "bad.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(record))  # NaN and Infinity as Python's json writes and reads them
  if BAD_VALUES[bad] is MISSING and may_lack:
    _read_with(reader, path, tmp_path, monkeypatch)  # read, and said to be not recorded
    shown = capsys.readouterr().out
    if reader == "eval --merge" and field == "model.coverage":
      assert "share of its parameters in faulty memory not recorded" in shown
    if reader == "compare" and field == "model.num_weights":
      assert "weights not recorded" in shown
  else:
    with pytest.raises((app.UsageError, ValueError)) as refusal:
      _read_with(reader, path, tmp_path, monkeypatch)
    message = str(refusal.value)
    file_name = "eval_random.json" if reader == "reproduction report" else "bad.json"
    assert f"{file_name}: invalid evaluation result" in message, message
    *where, name = field.split(".")
    assert name in message and ".".join(where) in message, message
    shown = capsys.readouterr().out
  assert not re.search(r"\bnan\b|\binf\b", shown, re.IGNORECASE), shown


@pytest.mark.parametrize("voltage", [0.0, -0.9, 1e200, math.inf])
def test_a_voltage_condition_outside_what_a_memory_runs_at_is_refused(voltage):
  record = {"format": evaluation.FORMAT, "model": {"digest": "m"},
            "data": {"n": 10, "digest": "d"}, "clean_errors": 1, "condition_kind": "voltage",
            "chips": {"chip1": {"kind": "custom"}},
            "entries": [{"chip": "chip1", "condition": voltage, "offset": 0, "errors": 2}]}
  with pytest.raises(ValueError, match=r"v.json: invalid evaluation result \(entries\[0\]: "
                                       r"(a condition of a profiled chip is a voltage in \(0, 10\]"
                                       r"|condition must be a finite number)"):
    evaluation.Results.from_dict(record, source="v.json")
  record["entries"][0]["condition"] = 0.9
  assert evaluation.Results.from_dict(record).rerr("chip1", 0.9) == 0.2
