"""Robust test error (RErr) of a quantized model over chips x conditions (x offsets).

RErr is the test error after injecting bit errors into the stored weights (Sec. 5, "Metrics").
For every chip (a seed, or a profiled map), every condition (bit error rate p, or the voltage of a
profiled chip) and every offset (where the weights start on a profiled map, App. C.1) the chip's
masks are loaded once into the model's memory (``tfbet.memory.load_chip``) and the whole test set
is run through one ``tf.function`` that is traced once and reused for every chip.

Results are *counts*: the number of misclassified test examples per (chip, condition, offset),
the clean count (all masks zero) and the number of test examples n. Counts from shards (disjoint
sets of chips) therefore merge exactly (:func:`merge`), and every statistic is computed from
counts afterwards: per condition the mean, standard deviation, minimum and maximum of RErr over
chips (a chip's RErr at a condition is the mean of errors / n over its offsets), and the bound of
Prop. 1 (App. C.2).

Result file (JSON, ``FORMAT``)::

    {"format": "tfbet-eval/1",
     "model": {"name", "digest", "num_weights", "scheme",    # digest: sha256 of the clean memory
               "coverage": {"faulty_parameters", "trainable_parameters", "parameters",
                            "faulty_share"}},                # share of parameters in faulty memory
     "data": {"n", "digest"},                                # digest: of the examples, below
     "clean_errors": int,
     "condition_kind": "rate" | "voltage",                   # rate p as a fraction, not in %
     "chips": {name: {"kind": ..., "seed": ..., ...}},       # the chips of this file
     "entries": [{"chip", "condition", "offset", "errors"}, ...],
     "clean_wrong": str,                                     # optional, see below
     # with it, every entry also has "wrong": str
     "plan": {"num_shards", "shard_index",                   # what the whole evaluation measures
              "chips": [{"name", "chip", "conditions", "offsets"}, ...]},  # all shards' chips
     "metadata": {...}}                                      # free-form (command line, paths)

The plan makes a file self-checking: its chips must be the shard ``shard_index`` of the plan's
chip list (:func:`shard`), described as the plan describes them, and every entry must be one of
the plan's (chip, condition, offset); :meth:`Results.missing` lists what is not measured yet.
:func:`merge` accepts only shards of one plan, each shard once, each complete, unless told to
merge a partial set (which the merged result then shows). Files without a plan (older tfbet)
are read but cannot be merged.

Per-example errors (``bin/eval --per_example``) are optional: ``clean_wrong`` and each entry's
``wrong`` say *which* test examples were misclassified, as base64 of ``numpy.packbits`` of n
booleans (1250 bytes for 10,000 examples). A comparison of two models on the same test set needs
them to measure its test-set noise (:mod:`tfbet.paired`). Either the clean count and every entry
carry them or none does, and each must agree with its count.

Every field that feeds arithmetic or a table is checked when a file is read (type, finiteness,
range, agreement with the others); a damaged file fails naming the file and the field. Counts
(n, errors, parameters) are at most ``MAX_COUNT``. ``model.coverage`` may be absent (files of
older versions: "not recorded"), but when present it must be complete and consistent.

The data digest identifies the test examples, their order and their labels, whatever the batch
size: ``DATA_DIGEST_PREFIX`` + sha256 over the example shape, the digest of all images and the
digest of all labels (:func:`digest_of_examples`). Files of older versions carry a bare sha256
that depended on the batch size; they are matched only with each other (equal at equal batch
sizes), and merging or comparing one with a current file is refused with a message to evaluate
it again.

The CSV next to it has one row per entry (``chip,<condition_kind>,offset,errors,n,rerr``) and a
first row ``clean,,,<clean errors>,n,<clean error>``.
"""
import collections
import csv
import base64
import binascii
import dataclasses
import fractions
import hashlib
import json
import math
import numbers
import os
import re
import time

from absl import logging
import numpy as np

from tfbet import checks
from tfbet import chip_models
from tfbet import files
from tfbet import lazy_modules

# Reading, merging and comparing result files needs none of these (docs/design.md, §2).
tf = lazy_modules.module("tensorflow")
memory = lazy_modules.module("tfbet.memory")
quantization = lazy_modules.module("tfbet.quantization")
quantize_configs = lazy_modules.module("tfbet.quantize_configs")

FORMAT = "tfbet-eval/1"
CONDITION_KINDS = ("rate", "voltage")
# Default confidence parameter of Prop. 1: the bound holds with probability 1 - delta = 99 %.
DEFAULT_DELTA = 0.01
# Result files larger than this are refused before reading (a 50-chip, 6-rate file is ~20 KB).
MAX_RESULT_BYTES = 1 << 30
# Largest count (test examples, errors, parameters) a result may hold: ratios of such counts are
# exact in float64, and it is far beyond any test set or model.
MAX_COUNT = 2**53
# Marks a data digest that does not depend on the batch size (older files lack it).
DATA_DIGEST_PREFIX = "examples-sha256:"
# Highest voltage condition (normalized by V_min): no memory runs at ten times V_min, and the
# energy model's v**2 stays finite.
MAX_VOLTAGE = 10.0
COVERAGE_FIELDS = ("faulty_parameters", "trainable_parameters", "parameters", "faulty_share")


def prop1_excess(n, l, delta=DEFAULT_DELTA):
  """Excess term of Prop. 1 (App. C.2).

  With probability ``1 - delta`` the expected robust error is below the measured RErr (averaged
  over ``l`` i.i.d. bit error patterns and ``n`` i.i.d. test examples) plus
  ``sqrt(log((n + 1) / delta) / n) * (sqrt(l) + sqrt(n)) / sqrt(l)``.

  The paper's figures (App. C.2, G.6): n = 1e4, l = 1e6 gives 4.1 %; n = 1e5 gives 1.7 %. (The
  text says "delta = 0.99", meaning a probability of 0.99; the figures need delta = 0.01.)
  """
  n = checks.count(n, "n", minimum=1)
  l = checks.count(l, "l", minimum=1)
  if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < 1:
    raise ValueError(f"delta must be a probability in (0, 1), got {delta!r}")
  return (math.sqrt(math.log((n + 1) / delta) / n)
          * (math.sqrt(l) + math.sqrt(n)) / math.sqrt(l))


def natural_key(text):
  """Sort key that orders embedded numbers numerically (random_999 before random_1000)."""
  return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
               for part in re.split(r"(\d+)", text) if part)


def shard(items, num_shards, shard_index):
  """The ``shard_index``-th of ``num_shards`` disjoint, deterministic parts (round robin)."""
  num_shards = checks.count(num_shards, "num_shards", minimum=1, maximum=checks.MAX_SHARDS)
  shard_index = checks.count(shard_index, "shard_index")
  if shard_index >= num_shards:
    raise ValueError(f"shard_index must be in [0, {num_shards - 1}], got {shard_index}")
  return list(items)[shard_index::num_shards]


def _name_of_description(info):
  """The name a random chip with this description has (None for kinds named freely)."""
  if info.get("kind") == "random":
    return chip_models.RandomChip(info["seed"]).name
  if info.get("kind") == "asymmetric":
    return chip_models.AsymmetricRandomChip(info["seed"], info["fraction_0to1"]).name
  return None


def _distinct(values, what):
  if len(set(values)) != len(values):
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    raise ValueError(f"{what} must be distinct, got {duplicates} more than once")
  return values


def make_plan(chips, conditions=None, offsets=(0,), num_shards=1, shard_index=0,
              allow_high_rate=False):
  """The plan of an evaluation (see the module docstring) and the part of it to measure here.

  Args:
    chips: every chip of the whole evaluation (all shards), in order; distinct names, all random
      (conditions are rates) or all profiled (conditions are voltages).
    conditions: rates p (fractions in [0, 1]) or voltages, the same for every chip; None = each
      chip's own ``conditions`` (profiled chips).
    offsets: bit offsets (multiples of 8 for random chips; in [0, rows * cols) for profiled
      chips, whose placements wrap around), or a callable chip -> offsets.
    num_shards, shard_index: measure only ``shard(chips, num_shards, shard_index)``.
    allow_high_rate: accept rates above 0.5 (refused by default as likely percents).

  Returns:
    (plan dict, [(chip, conditions, offsets)] of the chips of this shard).

  Sizes are bounded before the plan is built (``checks.MAX_CHIPS``, ``MAX_CONDITIONS``,
  ``MAX_OFFSETS``, ``MAX_PLAN_ENTRIES``, ``MAX_SHARDS``).
  """
  chip_list = checks.bounded_list(chips, "chips", checks.MAX_CHIPS)
  num_shards = checks.count(num_shards, "num_shards", minimum=1, maximum=checks.MAX_SHARDS)
  if not chip_list:
    raise ValueError("chips must not be empty")
  _distinct([chip.name for chip in chip_list], "chip names")
  kind = _condition_kind(chip_list)
  entries, work, num_entries = [], [], 0
  for chip in chip_list:
    chip_conditions = chip.conditions if conditions is None else conditions
    if chip_conditions is None:
      raise ValueError(f"chip {chip.name!r} has no conditions of its own; pass conditions "
                       "(bit error rates)")
    chip_conditions = [_check_condition(c, kind) for c in checks.bounded_list(
        chip_conditions, f"chip {chip.name!r}: conditions", checks.MAX_CONDITIONS)]
    if kind == "rate":
      chip_conditions = [checks.rate(c, "condition (bit error rate p)", allow_high_rate)
                         for c in chip_conditions]
    chip_offsets = offsets(chip) if callable(offsets) else offsets
    chip_offsets = [checks.count(o, "offset") for o in checks.bounded_list(
        chip_offsets, f"chip {chip.name!r}: offsets", checks.MAX_OFFSETS)]
    num_entries += len(chip_conditions) * len(chip_offsets)
    if num_entries > checks.MAX_PLAN_ENTRIES:
      raise ValueError(f"chips x conditions x offsets must be at most {checks.MAX_PLAN_ENTRIES} "
                       f"entries, got more by chip {chip.name!r}")
    if not chip_conditions or not chip_offsets:
      raise ValueError(f"chip {chip.name!r}: conditions and offsets must not be empty")
    _distinct(chip_conditions, f"chip {chip.name!r}: conditions")
    _distinct(chip_offsets, f"chip {chip.name!r}: offsets")
    num_cells = getattr(chip, "num_cells", None)
    if num_cells is not None and max(chip_offsets) >= num_cells:
      raise ValueError(
          f"chip {chip.name!r}: offset {max(chip_offsets)} is outside its {num_cells} bit cells; "
          f"offsets wrap around, so offset o is the placement o mod {num_cells}: give offsets "
          f"in [0, {num_cells})")
    entries.append({"name": chip.name, "chip": chip.describe(),
                    "conditions": chip_conditions, "offsets": chip_offsets})
    work.append((chip, chip_conditions, chip_offsets))
  plan = {"num_shards": num_shards,
          "shard_index": checks.count(shard_index, "shard_index"), "chips": entries}
  return _check_plan(plan, kind), shard(work, num_shards, shard_index)


def _check_plan(plan, kind):
  """Validates a plan (e.g. read from a file); returns it with normalized values."""
  if not isinstance(plan, dict):
    raise TypeError(f"plan must be a dict, got {type(plan).__name__}")
  num_shards = checks.count(plan["num_shards"], "plan num_shards", minimum=1,
                            maximum=checks.MAX_SHARDS)
  shard_index = checks.count(plan["shard_index"], "plan shard_index")
  if shard_index >= num_shards:
    raise ValueError(f"plan shard_index must be in [0, {num_shards - 1}], got {shard_index}")
  if not isinstance(plan["chips"], list):
    raise TypeError("plan chips must be a list")
  checks.bounded_list(plan["chips"], "plan chips", checks.MAX_CHIPS)
  num_entries = 0
  if len(plan["chips"]) <= shard_index:
    raise ValueError(f"shard {shard_index} of {num_shards} selects no chips: the evaluation has "
                     f"only {len(plan['chips'])} chip(s); use at most that many shards")
  entries = []
  for entry in plan["chips"]:
    name, info = entry["name"], entry["chip"]
    if not isinstance(name, str) or not name or not isinstance(info, dict):
      raise TypeError(f"plan chips need a name and a chip description, got {entry!r}")
    expected = _name_of_description(info)
    if expected is not None and expected != name:
      raise ValueError(f"chip {name!r} is described as {info}, which is chip {expected!r}")
    if not isinstance(entry["conditions"], list) or not isinstance(entry["offsets"], list):
      raise TypeError(f"plan chip {name!r}: conditions and offsets must be lists")
    checks.bounded_list(entry["conditions"], f"plan chip {name!r}: conditions",
                        checks.MAX_CONDITIONS)
    checks.bounded_list(entry["offsets"], f"plan chip {name!r}: offsets", checks.MAX_OFFSETS)
    num_entries += len(entry["conditions"]) * len(entry["offsets"])
    if num_entries > checks.MAX_PLAN_ENTRIES:
      raise ValueError(f"plan chips x conditions x offsets must be at most "
                       f"{checks.MAX_PLAN_ENTRIES} entries, got more by chip {name!r}")
    entries.append({"name": name, "chip": dict(info),
                    "conditions": [_check_condition(c, kind) for c in entry["conditions"]],
                    "offsets": [checks.integer(o, "offset", 0, MAX_COUNT)
                                for o in entry["offsets"]]})
    for values, what in ((entry["conditions"], "conditions"), (entry["offsets"], "offsets")):
      _distinct(list(values), f"plan chip {name!r}: {what}")
  _distinct([entry["name"] for entry in entries], "plan chip names")
  return {"num_shards": num_shards, "shard_index": shard_index, "chips": entries}


def _plan_difference(plan, other, kind):
  """How ``other`` differs from ``plan`` (shard_index aside), in words; None if it does not."""
  if plan["num_shards"] != other["num_shards"]:
    return f"num_shards {other['num_shards']} instead of {plan['num_shards']}"
  names = [entry["name"] for entry in plan["chips"]]
  other_names = [entry["name"] for entry in other["chips"]]
  if names != other_names:
    extra = [n for n in other_names if n not in names]
    lacking = [n for n in names if n not in other_names]
    return (f"{len(other_names)} chips instead of {len(names)}"
            + (f"; chips {extra[:5]} are not in the other" if extra else "")
            + (f"; it lacks chips {lacking[:5]}" if lacking else "")
            + ("; the chips are in another order" if not extra and not lacking else ""))
  labels = {"chip": "description", "conditions": f"{kind}s", "offsets": "offsets"}
  for mine, theirs in zip(plan["chips"], other["chips"]):
    for key, label in labels.items():
      if mine[key] != theirs[key]:
        return f"chip {mine['name']!r} has {label} {theirs[key]} instead of {mine[key]}"
  return None


def _condition_kind(chip_list):
  kinds = {"rate" if chip.conditions is None else "voltage" for chip in chip_list}
  if len(kinds) != 1:
    raise ValueError("chips must be all random (conditions are rates) or all profiled "
                     f"(conditions are voltages), got {[repr(c) for c in chip_list]}")
  return kinds.pop()


def _check_condition(value, kind):
  value = checks.real(value, "condition")
  if kind == "rate" and not 0 <= value <= 1:
    raise ValueError(f"a condition of a random chip is a bit error rate in [0, 1] (a fraction, "
                     f"not in %), got {value}")
  if kind == "voltage" and not 0 < value <= MAX_VOLTAGE:
    raise ValueError(f"a condition of a profiled chip is a voltage in (0, {MAX_VOLTAGE:g}] "
                     f"(normalized by V_min), got {value}")
  return value


def _check_coverage(coverage, num_weights):
  """``model.coverage`` of a result: whole counts that agree with each other and the share."""
  if not isinstance(coverage, dict):
    raise checks.ArgumentTypeError(f"model.coverage must be a dict with {COVERAGE_FIELDS}, got "
                                   f"{coverage!r:.100}")
  missing = [key for key in COVERAGE_FIELDS if key not in coverage]
  if missing:
    raise ValueError(f"model.coverage lacks {missing}")
  counts = {key: checks.integer(coverage[key], f"model.coverage.{key}", 0, MAX_COUNT)
            for key in COVERAGE_FIELDS[:3]}
  parameters = counts["parameters"]
  for key in ("faulty_parameters", "trainable_parameters"):
    if counts[key] > parameters:
      raise ValueError(f"model.coverage.{key} must be in [0, parameters={parameters}], got "
                       f"{counts[key]}")
  share = checks.probability(coverage["faulty_share"], "model.coverage.faulty_share")
  expected = counts["faulty_parameters"] / parameters if parameters else 0.0
  if not math.isclose(share, expected, rel_tol=1e-9, abs_tol=1e-12):
    raise ValueError(f"model.coverage.faulty_share {share!r} is not faulty_parameters / "
                     f"parameters = {expected!r}")
  if num_weights is not None and counts["faulty_parameters"] != num_weights:
    raise ValueError(f"model.coverage.faulty_parameters {counts['faulty_parameters']} differs "
                     f"from model.num_weights {num_weights} (both count the weights in faulty "
                     "memory)")
  return dict(counts, faulty_share=share)


def _check_model(model):
  """The ``model`` field of results, checked where it feeds the tables and the arithmetic."""
  if not isinstance(model, dict):
    raise checks.ArgumentTypeError(f"model must be a dict with a 'digest', got {model!r:.100}")
  model = dict(model)
  if not isinstance(model.get("digest"), str) or not model["digest"]:
    raise checks.ArgumentTypeError(f"model.digest must be a non-empty string, got "
                                   f"{model.get('digest')!r:.100}")
  if model.get("name") is not None and not isinstance(model["name"], str):
    raise checks.ArgumentTypeError(f"model.name must be a string, got {model['name']!r:.100}")
  if model.get("num_weights") is not None:
    model["num_weights"] = checks.integer(model["num_weights"], "model.num_weights", 0, MAX_COUNT)
  if model.get("scheme") is not None and not isinstance(model["scheme"], dict):
    raise checks.ArgumentTypeError(f"model.scheme must be a dict, got {model['scheme']!r:.100}")
  if model.get("coverage") is not None:  # Absent in files of older versions: not recorded.
    model["coverage"] = _check_coverage(model["coverage"], model.get("num_weights"))
  return model


def digest_of_examples(example_shape, images_digest, labels_digest):
  """The data digest (see the module docstring) from sha256 objects fed all images / labels."""
  digest = hashlib.sha256(json.dumps([int(d) for d in example_shape]).encode())
  digest.update(images_digest.digest())
  digest.update(labels_digest.digest())
  return DATA_DIGEST_PREFIX + digest.hexdigest()


def model_difference(model, other):
  """How two results' ``model`` fields differ, in plain words; None if they are equal."""
  if model == other:
    return None
  if model.get("digest") != other.get("digest"):
    return "model weights differ (another model, or the same model trained further)"
  if model.get("scheme") != other.get("scheme"):
    return "quantization schemes differ"
  keys = sorted(key for key in set(model) | set(other) if model.get(key) != other.get(key))
  return "model descriptions differ in " + ", ".join(
      f"{key} ({model.get(key)!r:.60} vs {other.get(key)!r:.60})" for key in keys)


def kind_difference(results, other):
  """"rates vs voltages" when two results measure different kinds of conditions, else None."""
  if results.condition_kind == other.condition_kind:
    return None
  return (f"one measures {results.condition_kind}s, the other {other.condition_kind}s (random "
          "chips over bit error rates vs profiled chips over voltages)")


def data_difference(results, other, source, other_source):
  """How the test sets of two results (named ``source``, ``other_source``) differ, in plain
  words; None if they are the same examples in the same order with the same labels."""
  if results.n != other.n:
    return f"test set differs: {results.n} vs {other.n} examples"
  if results.data_digest == other.data_digest:
    return None
  old = [name for name, item in ((source, results), (other_source, other))
         if not item.data_digest.startswith(DATA_DIGEST_PREFIX)]
  if len(old) == 1:
    return (f"{old[0]} was written by an older tfbet, whose test-set digest depended on the "
            "batch size, so nobody can tell whether the test sets agree: evaluate it again")
  return (f"test set differs: {results.n} examples each, but other images, labels or order "
          "(data digests differ)")


@dataclasses.dataclass(frozen=True)
class ConditionSummary:
  """RErr statistics over chips at one condition, as fractions (multiply by 100 for %)."""
  condition: float
  num_chips: int
  num_patterns: int  # l of Prop. 1: evaluated (chip, offset) pairs
  mean: float
  std: float  # population standard deviation over chips (ddof = 0)
  min: float
  max: float
  excess: float  # Prop. 1 excess term for n and l = num_patterns
  bound: float  # min(1, mean + excess): an error rate above 100 % says nothing
  vacuous: bool  # mean + excess >= 1: the bound holds trivially at this n and l


class Results:
  """Error counts of one model on one test set; see the module docstring for the file format.

  Attributes:
    model: {"name", "digest", "num_weights", "scheme", "coverage"} of the evaluated model.
    n: number of test examples.
    data_digest: digest of the test examples, their order and labels (module docstring).
    clean_errors: misclassified examples with all masks zero.
    condition_kind: "rate" (random chips) or "voltage" (profiled chips).
    errors: {(chip name, condition, offset): misclassified examples}.
    chips: {chip name: description dict}; every entry's chip must be described here. None
      without a plan: the chips the entries name, without descriptions (hand-made results).
    plan: what the whole evaluation measures (see the module docstring), or None (older files).
    metadata: free-form JSON-able dict.
  """

  def __init__(self, *, model, n, data_digest, clean_errors, condition_kind, errors=None,
               chips=None, metadata=None, plan=None, clean_wrong=None, wrong=None):
    if condition_kind not in CONDITION_KINDS:
      raise ValueError(f"condition_kind must be one of {CONDITION_KINDS}, got {condition_kind!r}")
    self.model = _check_model(model)
    self.n = checks.integer(n, "n", 1, MAX_COUNT)
    if not isinstance(data_digest, str) or not data_digest:
      raise checks.ArgumentTypeError(f"data_digest must be a non-empty string, got "
                                     f"{data_digest!r:.100}")
    self.data_digest = data_digest
    self.clean_errors = checks.count(clean_errors, "clean_errors")
    if self.clean_errors > self.n:
      raise ValueError(f"clean_errors must be in [0, n={self.n}], got {self.clean_errors}")
    self.condition_kind = condition_kind
    if chips is None and plan is None:  # Hand-made results: the entries name their chips.
      chips = {key[0]: {} for key in (errors or {})}
    for value, what in ((chips, "chips"), (metadata, "metadata")):
      if value is not None and not isinstance(value, dict):
        raise checks.ArgumentTypeError(f"{what} must be a dict, got {value!r:.100}")
    if any(not isinstance(info, dict) for info in (chips or {}).values()):
      raise checks.ArgumentTypeError(f"chips must map names to description dicts, got "
                                     f"{chips!r:.100}")
    self.chips = {name: dict(info) for name, info in (chips or {}).items()}
    self.plan = None if plan is None else _check_plan(plan, condition_kind)
    self._grid = {}  # {chip name: (conditions, offsets)} of this shard's chips in the plan
    if self.plan is not None:
      mine = shard(self.plan["chips"], self.plan["num_shards"], self.plan["shard_index"])
      planned = {entry["name"]: entry for entry in mine}
      for name, info in self.chips.items():
        if name not in planned:
          raise ValueError(f"chip {name!r} is not one of the chips of shard "
                           f"{self.plan['shard_index']} of {self.plan['num_shards']} in the plan")
        if planned[name]["chip"] != info:
          raise ValueError(f"chip {name!r} is described as {info} but the plan describes it as "
                           f"{planned[name]['chip']}")
      self._grid = {name: (set(entry["conditions"]), set(entry["offsets"]))
                    for name, entry in planned.items()}
    for name, info in self.chips.items():
      expected = _name_of_description(info)
      if expected is not None and expected != name:
        raise ValueError(f"chip {name!r} is described as {info}, which is chip {expected!r}")
    self.metadata = dict(metadata or {})
    self.clean_wrong = (None if clean_wrong is None
                        else self._check_wrong(clean_wrong, self.clean_errors, "clean_wrong"))
    self.errors = {}
    self.wrong = {}  # {(chip, condition, offset): bool [n]} when per_example
    for key, count in (errors or {}).items():
      self.add(*key, count, wrong=None if wrong is None else wrong.get(key))

  @property
  def per_example(self):
    """True when the results say which examples were misclassified (clean and every entry)."""
    return self.clean_wrong is not None

  def _check_wrong(self, wrong, errors, what):
    """``wrong`` as a bool array of n whose sum is ``errors``; ValueError naming ``what``."""
    array = np.asarray(wrong)
    if array.shape != (self.n,) or not (array.dtype == bool or np.isin(array, (0, 1)).all()):
      raise ValueError(f"{what} must be n={self.n} booleans, got shape {array.shape} and dtype "
                       f"{array.dtype}")
    array = array.astype(bool)
    if int(array.sum()) != errors:
      raise ValueError(f"{what} marks {int(array.sum())} misclassified examples but the count is "
                       f"{errors}")
    return array

  def wrong_matrix(self, condition, chips=None):
    """bool [chips, offsets, n]: which examples each chip (offset) misclassified at condition."""
    if not self.per_example:
      raise ValueError("these results have no per-example errors (evaluate with --per_example)")
    names = self.chip_names if chips is None else list(chips)
    return np.stack([np.stack([self.wrong[(name, condition, o)]
                               for o in self.offsets(name, condition)]) for name in names])

  def add(self, chip, condition, offset, errors, wrong=None):
    """Records one count (and its per-example errors when the results carry them) once."""
    if not isinstance(chip, str) or not chip:
      raise TypeError(f"chip must be a non-empty name, got {chip!r}")
    key = (chip, _check_condition(condition, self.condition_kind),
           checks.integer(offset, "offset", 0, MAX_COUNT))
    errors = checks.count(errors, "errors")
    if errors > self.n:
      raise ValueError(f"errors must be in [0, n={self.n}], got {errors} for {key}")
    if chip not in self.chips:
      raise ValueError(f"entry {key} is for chip {chip!r}, which the results do not list "
                       f"(chips: {sorted(self.chips, key=natural_key)[:10]})")
    if self.plan is not None:
      conditions, offsets = self._grid[chip]
      if key[1] not in conditions or key[2] not in offsets:
        raise ValueError(f"entry {key} is not in the plan: chip {chip!r} is measured at "
                         f"{self.condition_kind}s {sorted(conditions)} and offsets "
                         f"{sorted(offsets)}")
    if key in self.errors:
      raise ValueError(f"duplicate entry for chip {key[0]!r}, {self.condition_kind} {key[1]}, "
                       f"offset {key[2]}")
    if (wrong is None) == self.per_example:
      raise ValueError(f"entry {key}: per-example errors must be given for every entry exactly "
                       "when clean_wrong is given" + ("" if self.per_example else
                                                      " (clean_wrong is missing)"))
    if wrong is not None:
      self.wrong[key] = self._check_wrong(wrong, errors, f"wrong of entry {key}")
    self.errors[key] = errors

  @property
  def clean_error(self):
    """Err: the clean test error as a fraction."""
    return self.clean_errors / self.n

  @property
  def chip_names(self):
    return sorted(self.chips, key=natural_key)

  def planned(self):
    """The (chip, condition, offset) keys this shard's plan measures, in order (None: no plan)."""
    if self.plan is None:
      return None
    mine = shard(self.plan["chips"], self.plan["num_shards"], self.plan["shard_index"])
    return [(entry["name"], condition, offset) for entry in mine
            for condition in entry["conditions"] for offset in entry["offsets"]]

  def missing(self):
    """Planned (chip, condition, offset) keys not measured yet ([] when complete; None: no plan)."""
    planned = self.planned()
    return None if planned is None else [key for key in planned if key not in self.errors]

  def describe_missing(self):
    """One line saying what is missing, or None when the results are complete (or unplanned)."""
    missing = self.missing()
    if not missing:
      return None
    chips = sorted({key[0] for key in missing}, key=natural_key)
    total = len(self.planned())
    return (f"{len(missing)} of {total} planned counts are missing, of {len(chips)} chip(s): "
            f"{', '.join(chips[:8])}{' ...' if len(chips) > 8 else ''}")

  @property
  def conditions(self):
    return sorted({key[1] for key in self.errors})

  def offsets(self, chip, condition):
    return sorted(o for c, v, o in self.errors if c == chip and v == condition)

  def _exact_rerr(self, chip, condition):
    counts = [self.errors[(chip, condition, o)] for o in self.offsets(chip, condition)]
    if not counts:
      return None
    return fractions.Fraction(sum(counts), len(counts) * self.n)

  def rerr(self, chip, condition):
    """RErr of one chip at one condition: mean of errors / n over its offsets (None if absent)."""
    value = self._exact_rerr(chip, condition)
    return None if value is None else float(value)

  def summary(self, delta=DEFAULT_DELTA, chips=None):
    """[ConditionSummary] per condition, over ``chips`` (default: all) that have it.

    Computed exactly from the counts (rational arithmetic), so equal counts give equal numbers
    however the results were sharded.
    """
    names = self.chip_names if chips is None else list(chips)
    rows = []
    for condition in self.conditions:
      values = [self._exact_rerr(name, condition) for name in names]
      values = [v for v in values if v is not None]
      if not values:
        continue
      patterns = sum(len(self.offsets(name, condition)) for name in names)
      excess = prop1_excess(self.n, patterns, delta)
      mean = sum(values) / len(values)
      variance = sum((v - mean) ** 2 for v in values) / len(values)
      rows.append(ConditionSummary(
          condition=condition, num_chips=len(values), num_patterns=patterns, mean=float(mean),
          std=math.sqrt(variance), min=float(min(values)), max=float(max(values)),
          excess=excess, bound=min(1.0, float(mean) + excess),
          vacuous=float(mean) + excess >= 1))
    return rows

  def sorted_entries(self):
    return sorted(self.errors.items(),
                  key=lambda item: (natural_key(item[0][0]), item[0][1], item[0][2]))

  def to_dict(self):
    record = {
        "format": FORMAT,
        "model": self.model,
        "data": {"n": self.n, "digest": self.data_digest},
        "clean_errors": self.clean_errors,
        "condition_kind": self.condition_kind,
        "chips": {name: self.chips[name] for name in self.chip_names if name in self.chips},
        "entries": [{"chip": c, "condition": v, "offset": o, "errors": e}
                    for (c, v, o), e in self.sorted_entries()],
        "plan": self.plan,
        "metadata": self.metadata,
    }
    if self.per_example:
      record["clean_wrong"] = _encode_bits(self.clean_wrong)
      for entry in record["entries"]:
        entry["wrong"] = _encode_bits(
            self.wrong[(entry["chip"], entry["condition"], entry["offset"])])
    return record

  @property
  def faulty_share(self):
    """Share of the model's parameters that sat in faulty memory; None if not recorded."""
    return (self.model.get("coverage") or {}).get("faulty_share")

  @classmethod
  def from_dict(cls, record, source="<dict>"):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
      found = record.get("format") if isinstance(record, dict) else type(record).__name__
      raise ValueError(f"{source}: not a tfbet evaluation result (format {found!r}, "
                       f"expected {FORMAT!r})")
    try:
      data = _field(record, "data")
      if not isinstance(data, dict):
        raise checks.ArgumentTypeError(f"data must be a dict with n and digest, got {data!r:.100}")
      n = checks.integer(_field(data, "n", "data.n"), "data.n", 1, MAX_COUNT)
      digest = _field(data, "digest", "data.digest")
      if not isinstance(digest, str) or not digest:
        raise checks.ArgumentTypeError(f"data.digest must be a non-empty string, got "
                                       f"{digest!r:.100}")
      results = cls(model=_field(record, "model"), n=n, data_digest=digest,
                    clean_errors=_field(record, "clean_errors"),
                    condition_kind=_field(record, "condition_kind"),
                    chips=record.get("chips", {}),
                    metadata=record.get("metadata", {}), plan=record.get("plan"),
                    clean_wrong=(None if record.get("clean_wrong") is None else _decode_bits(
                        record["clean_wrong"], n, "clean_wrong")))
      entries = _field(record, "entries")
      if not isinstance(entries, list):
        raise TypeError("entries must be a list")
      for index, entry in enumerate(entries):
        try:
          if not isinstance(entry, dict):
            raise checks.ArgumentTypeError(f"must be a dict, got {entry!r:.100}")
          wrong = entry.get("wrong")
          if wrong is not None:
            wrong = _decode_bits(wrong, results.n, f"wrong of entry {entry.get('chip')!r}")
          results.add(*(_field(entry, key) for key in ("chip", "condition", "offset", "errors")),
                      wrong=wrong)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
          raise ValueError(f"entries[{index}]: {error}") from error
      return results
    except (KeyError, TypeError, ValueError, AttributeError) as error:
      raise ValueError(f"{source}: invalid evaluation result ({error})") from error

  def to_json(self, path):
    """Writes the JSON file (atomically: a reader never sees half of it)."""
    with files.atomic_open(path) as f:
      json.dump(self.to_dict(), f, indent=1)
    return path

  @classmethod
  def from_json(cls, path):
    """Reads a result file; ValueError naming ``path`` if it is not a valid one."""
    try:
      size = files.size(path)
      if size > MAX_RESULT_BYTES:
        raise ValueError(f"{size} bytes, more than the {MAX_RESULT_BYTES} a result file may have")
      with files.open_text(path) as f:
        record = json.load(f)
    except RecursionError as error:
      raise ValueError(f"cannot read evaluation result {path!r}: its JSON is nested too deeply "
                       "to be a result file") from error
    except (OSError, ValueError, *files.tensorflow_errors()) as error:  # bad JSON or UTF-8
      raise ValueError(f"cannot read evaluation result {path!r}: {error}") from error
    return cls.from_dict(record, source=path)

  def to_csv(self, path):
    """Writes one row per entry plus the clean row (see the module docstring), atomically."""
    with files.atomic_open(path) as f:
      writer = csv.writer(f, lineterminator="\n")
      writer.writerow(["chip", self.condition_kind, "offset", "errors", "n", "rerr"])
      writer.writerow(["clean", "", "", self.clean_errors, self.n, repr(self.clean_error)])
      for (chip, condition, offset), errors in self.sorted_entries():
        writer.writerow([chip, repr(condition), offset, errors, self.n, repr(errors / self.n)])
    return path

  def same_counts(self, other):
    """True if both hold the same model, data and counts (metadata aside)."""
    return (self.model == other.model and self.n == other.n
            and self.data_digest == other.data_digest
            and self.clean_errors == other.clean_errors
            and self.condition_kind == other.condition_kind and self.errors == other.errors
            and self.chips == other.chips and self.per_example == other.per_example
            and (not self.per_example or (
                np.array_equal(self.clean_wrong, other.clean_wrong)
                and all(np.array_equal(w, other.wrong[k]) for k, w in self.wrong.items()))))


def _field(record, key, name=None):
  """``record[key]``; a ValueError naming the field (``name``, default ``key``) if missing."""
  if key not in record:
    raise ValueError(f"field {name or key} is missing")
  return record[key]


def _encode_bits(flags):
  return base64.b64encode(np.packbits(np.asarray(flags, bool)).tobytes()).decode("ascii")


def _decode_bits(text, n, what):
  """n booleans from :func:`_encode_bits`' text; ValueError naming ``what`` otherwise."""
  if not isinstance(text, str):
    raise ValueError(f"{what} must be a base64 string, got {type(text).__name__}")
  try:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
  except (binascii.Error, UnicodeEncodeError) as error:
    raise ValueError(f"{what} is not valid base64 ({error})") from error
  if len(raw) != (n + 7) // 8:
    raise ValueError(f"{what} holds {len(raw)} bytes, {(n + 7) // 8} expected for n={n}")
  bits = np.unpackbits(np.frombuffer(raw, np.uint8))
  if bits[n:].any():
    raise ValueError(f"{what} has bits set beyond the n={n} examples")
  return bits[:n].astype(bool)


def merge(results_list, sources=None, allow_partial=False):
  """Merges the shards of one evaluation into one Results; every count is kept exactly.

  The parts must come from the same model (digest), test set (n, digest), clean count and
  condition kind, and carry the same plan (chips with their descriptions, conditions, offsets,
  num_shards). Each shard index must appear once, and each part must hold exactly its planned
  counts. Otherwise a ValueError names the part (``sources[i]``, e.g. its file) and what
  differs. With ``allow_partial`` missing shards and counts are accepted: the merged result's
  :meth:`Results.missing` then lists them. Metadata keeps the keys on which all parts agree.
  """
  results_list = list(results_list)
  if not results_list:
    raise ValueError("results_list must hold at least one Results")
  sources = ([f"results_list[{i}]" for i in range(len(results_list))] if sources is None
             else [str(source) for source in sources])
  if len(sources) != len(results_list):
    raise ValueError(f"sources must name each of the {len(results_list)} parts")
  for item in results_list:
    if not isinstance(item, Results):
      raise TypeError(f"results_list must hold Results, got {type(item).__name__}")
  first = results_list[0]
  for source, item in zip(sources, results_list):
    if item.plan is None:
      raise ValueError(f"{source} has no plan (written by an older tfbet), so nobody can tell "
                       "whether the shards are complete; evaluate it again to merge it")
  for source, item in zip(sources[1:], results_list[1:]):
    difference = (model_difference(item.model, first.model)
                  or data_difference(item, first, source, sources[0])
                  or kind_difference(item, first))
    if difference is None and item.clean_errors != first.clean_errors:
      difference = (f"clean errors differ: {item.clean_errors} vs {first.clean_errors} (one "
                    "model on one test set counts the same)")
    if difference:
      raise ValueError(f"{source} and {sources[0]} do not merge: {difference}; only results of "
                       "one model on one test set merge")
    if item.per_example != first.per_example or (
        first.per_example and not np.array_equal(item.clean_wrong, first.clean_wrong)):
      raise ValueError(f"{source} and {sources[0]} differ in their per-example clean errors "
                       "(one has none, or they mark other examples); evaluate both the same way")
    difference = _plan_difference(first.plan, item.plan, first.condition_kind)
    if difference:
      raise ValueError(f"{source} is not a shard of the same evaluation as {sources[0]}: it "
                       f"plans {difference}")
  by_index = {}
  for source, item in zip(sources, results_list):
    index = item.plan["shard_index"]
    if index in by_index:
      raise ValueError(f"{source} and {by_index[index]} are both shard {index} of "
                       f"{first.plan['num_shards']}; give each shard once")
    by_index[index] = source
  problems = [f"shard(s) {missing} of {first.plan['num_shards']} are missing"
              for missing in [sorted(set(range(first.plan["num_shards"])) - set(by_index))]
              if missing]
  problems += [f"{source} is incomplete: {item.describe_missing()}"
               for source, item in zip(sources, results_list) if item.missing()]
  if problems and not allow_partial:
    raise ValueError("not a complete set of shards: " + "; ".join(problems)
                     + " (a partial merge must be asked for explicitly)")
  chips = {}
  for item in results_list:
    chips.update(item.chips)  # Equal descriptions: every part matches the common plan.
  metadata = {key: value for key, value in first.metadata.items()
              if all(key in r.metadata and r.metadata[key] == value for r in results_list)}
  merged = Results(model=first.model, n=first.n, data_digest=first.data_digest,
                   clean_errors=first.clean_errors, condition_kind=first.condition_kind,
                   chips=chips, metadata=metadata,
                   plan=dict(first.plan, num_shards=1, shard_index=0),
                   clean_wrong=first.clean_wrong)
  for item in results_list:
    for key, errors in item.errors.items():
      merged.add(*key, errors, wrong=item.wrong.get(key))
  return merged


@dataclasses.dataclass(frozen=True)
class ChipProgress:
  """Reported after each chip: its counts and the time since the evaluation started."""
  index: int  # 0-based
  total: int
  chip: str
  errors: dict  # {(condition, offset): errors}
  n: int
  elapsed: float  # seconds since the start (clean evaluation included)
  resumed: int = 0  # chips taken over from an earlier, interrupted run (not timed here)
  condition_kind: str = "rate"  # "rate" (p, a fraction) or "voltage"

  def line(self):
    """One line: chip index, name, RErr per condition (mean over offsets), time, time left."""
    by_condition = collections.defaultdict(list)
    for (condition, _), errors in sorted(self.errors.items()):
      by_condition[condition].append(errors / self.n)
    label = ((lambda c: f"p={100 * c:g}%") if self.condition_kind == "rate"
             else (lambda c: f"V={c:g}"))
    rerrs = " ".join(f"{label(c)}:{100 * sum(v) / len(v):.2f}%" for c, v in by_condition.items())
    measured = max(1, self.index + 1 - self.resumed)
    remaining = self.elapsed / measured * (self.total - self.index - 1)
    return (f"[{self.index + 1}/{self.total}] {self.chip} RErr {rerrs} "
            f"({self.elapsed:.1f} s elapsed, ~{remaining:.0f} s left)")


def log_progress(event):
  """Default progress report: ``event.line()`` as one absl INFO line per chip."""
  logging.info("%s", event.line())


def describe_model(model_info):
  """'<name>: W of N parameters (S %) in faulty memory' from a result's ``model`` field."""
  cov = model_info.get("coverage")
  if not cov:
    share = "share of its parameters in faulty memory not recorded"
    return f"model {model_info.get('name')} ({model_info.get('num_weights')} weights, {share})"
  return (f"model {model_info.get('name')}: {cov['faulty_parameters']} of {cov['parameters']} "
          f"parameters ({100 * cov['faulty_share']:.2f} %) in faulty memory")


def model_digest(mem):
  """sha256 of the clean memory (codes, ranges, scheme): identifies the evaluated weights."""
  codes, ranges = memory.memory_contents(mem)
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(codes).tobytes())
  digest.update(np.ascontiguousarray(ranges, dtype=np.float32).tobytes())
  digest.update(json.dumps(mem.scheme.to_dict(), sort_keys=True).encode())
  return digest.hexdigest()


class Evaluator:
  """Counts misclassified test examples of a quantized model under the masks loaded now.

  The test set is read once into memory. The forward pass is one ``tf.function`` with a fixed
  input signature (any batch size), traced on the first call and reused for every chip.
  """

  def __init__(self, model, dataset):
    self.model = model
    self.layout = memory.layout(model)
    num_classes = int(model.output_shape[-1])
    self._batches = []
    images_digest, labels_digest = hashlib.sha256(), hashlib.sha256()
    n = 0
    for batch in dataset:
      if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("dataset must yield (images, labels) batches")
      images = tf.convert_to_tensor(batch[0], dtype=tf.float32)
      labels = tf.constant(checks.class_labels(batch[1], "dataset labels", num_classes, n))
      if labels.shape.rank != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"dataset batches must be images [b, ...] with labels [b], got "
                         f"{images.shape} and {labels.shape}")
      images_digest.update(images.numpy().tobytes())
      labels_digest.update(labels.numpy().tobytes())
      self._batches.append((images, labels))
      n += int(labels.shape[0])
    if n == 0:
      raise ValueError("dataset must hold at least one test example")
    shapes = {tuple(images.shape[1:]) for images, _ in self._batches}
    if len(shapes) != 1:
      raise ValueError(f"all batches must have the same example shape, got {sorted(shapes)}")
    self.n = n
    example_shape = shapes.pop()
    self.data_digest = digest_of_examples(example_shape, images_digest, labels_digest)

    @tf.function(input_signature=[tf.TensorSpec((None,) + example_shape, tf.float32),
                                  tf.TensorSpec((None,), tf.int64)])
    def wrong_examples(images, labels):
      logits = self.model(images, training=False)
      predictions = tf.argmax(logits, axis=-1, output_type=tf.int64)
      return tf.not_equal(predictions, labels)

    self._wrong_examples = wrong_examples
    self.digest = model_digest(self.layout)

  def reread_model(self):
    """Takes the model's weights as they are now (e.g. after training epochs): refreshes a
    global range and the digest, as a new ``Evaluator`` would, without re-reading the test set
    or tracing the forward pass again (``tfbet.callbacks.RErrMonitor``)."""
    self.digest = model_digest(self.layout)

  @property
  def trace_count(self):
    """How often the forward pass was traced (1 after the first evaluation, and it stays 1)."""
    return self._wrong_examples.experimental_get_tracing_count()

  def describe_model(self):
    return {"name": self.model.name, "digest": self.digest,
            "num_weights": self.layout.num_weights, "scheme": self.layout.scheme.to_dict(),
            "coverage": memory.coverage(self.layout).to_dict()}

  def wrong(self):
    """bool [n]: the test examples misclassified with the masks that are loaded right now."""
    return np.concatenate([self._wrong_examples(images, labels).numpy()
                           for images, labels in self._batches])

  def errors(self):
    """Misclassified test examples with the masks that are loaded right now."""
    return int(self.wrong().sum())

  def clean_wrong(self):
    """bool [n]: the examples the clean quantized model misclassifies (clears all masks)."""
    memory.clear_masks(self.layout)
    return self.wrong()

  def clean_errors(self):
    """Misclassified test examples of the clean quantized model (clears all masks)."""
    return int(self.clean_wrong().sum())

  def chip_wrong(self, chip, condition, offset=0, allow_high_rate=False):
    """Loads ``chip``'s masks at ``condition`` and ``offset`` once: bool [n] misclassified."""
    memory.load_chip(self.layout, chip, condition, offset=offset,
                     allow_high_rate=allow_high_rate)
    return self.wrong()

  def chip_errors(self, chip, condition, offset=0, allow_high_rate=False):
    """Loads ``chip``'s masks at ``condition`` and ``offset`` once, then counts errors."""
    return int(self.chip_wrong(chip, condition, offset, allow_high_rate).sum())

  def run(self, chips, conditions=None, offsets=(0,), progress=log_progress, metadata=None,
          num_shards=1, shard_index=0, resume=None, checkpoint=None, allow_high_rate=False,
          per_example=False):
    """Evaluates every chip of a shard at every condition and offset; returns ``Results``.

    Args:
      chips, conditions, offsets, num_shards, shard_index: the evaluation, see
        :func:`make_plan`; only the chips of shard ``shard_index`` are measured.
      progress: callable(ChipProgress) after each chip, or None.
      metadata: JSON-able dict stored with the results.
      resume: Results of an earlier, interrupted run of the same evaluation (same plan, model,
        test set and clean count, else ValueError); its complete chips are taken over.
      checkpoint: callable(Results so far) after each chip, e.g. to save them; with ``resume``
        this makes a long evaluation resumable.
      allow_high_rate: accept rates above 0.5 (refused by default as likely percents).
      per_example: also record which examples each chip misclassifies (see the module
        docstring); a comparison of models then measures its test-set noise.
    """
    plan, work = make_plan(chips, conditions, offsets, num_shards, shard_index,
                           allow_high_rate=allow_high_rate)
    kind = _condition_kind([chip for chip, _, _ in work])
    started = time.perf_counter()
    clean_wrong = self.clean_wrong()
    results = Results(model=self.describe_model(), n=self.n, data_digest=self.data_digest,
                      clean_errors=int(clean_wrong.sum()), condition_kind=kind,
                      chips={chip.name: chip.describe() for chip, _, _ in work},
                      metadata=metadata, plan=plan,
                      clean_wrong=clean_wrong if per_example else None)
    done = set()
    if resume is not None:
      for chip, chip_conditions, chip_offsets in self._check_resume(resume, results, work):
        for condition in chip_conditions:
          for offset in chip_offsets:
            key = (chip.name, condition, offset)
            results.add(*key, resume.errors[key], wrong=resume.wrong.get(key))
        done.add(chip.name)
    try:
      for index, (chip, chip_conditions, chip_offsets) in enumerate(work):
        if chip.name in done:
          continue
        wrong = {}
        for condition in chip_conditions:
          for offset in chip_offsets:
            wrong[(condition, offset)] = self.chip_wrong(chip, condition, offset,
                                                         allow_high_rate)
        counts = {key: int(flags.sum()) for key, flags in wrong.items()}
        for (condition, offset), errors in counts.items():
          results.add(chip.name, condition, offset, errors,
                      wrong=wrong[(condition, offset)] if per_example else None)
        if checkpoint is not None:
          checkpoint(results)
        if progress is not None:
          progress(ChipProgress(index=index, total=len(work), chip=chip.name, errors=counts,
                                n=self.n, elapsed=time.perf_counter() - started,
                                resumed=len(done), condition_kind=kind))
    finally:
      memory.clear_masks(self.layout)
    return results

  @staticmethod
  def _check_resume(resume, results, work):
    """The chips of ``work`` that ``resume`` holds completely; ValueError if it is foreign."""
    difference = data_difference(resume, results, "the earlier partial result", "this run")
    if difference:
      raise ValueError(f"cannot resume: {difference}")
    checks = (("model", resume.model, results.model),
              ("clean_errors", resume.clean_errors, results.clean_errors),
              ("condition_kind", resume.condition_kind, results.condition_kind),
              ("plan", resume.plan, results.plan),
              ("per-example recording", resume.per_example, results.per_example))
    for what, theirs, mine in checks:
      if theirs != mine:
        raise ValueError(f"cannot resume: the earlier results have another {what} "
                         f"({theirs!r:.200} instead of {mine!r:.200})")
    return [item for item in work
            if all((item[0].name, c, o) in resume.errors for c in item[1] for o in item[2])]


def evaluate(model, dataset, chips, conditions=None, offsets=(0,), progress=log_progress,
             metadata=None, num_shards=1, shard_index=0, allow_high_rate=False,
             per_example=False):
  """RErr counts of quantized ``model`` on ``dataset`` for every chip x condition x offset.

  ``dataset`` yields (images, labels) batches (e.g. ``DataSplits.test_dataset()``), labels of an
  integer dtype in [0, number of model outputs) (``checks.class_labels``); see
  ``Evaluator.run`` for the other arguments. The model's masks are all zero afterwards.
  """
  return Evaluator(model, dataset).run(chips, conditions, offsets, progress=progress,
                                       metadata=metadata, num_shards=num_shards,
                                       shard_index=shard_index, allow_high_rate=allow_high_rate,
                                       per_example=per_example)


def evaluate_float_model(model, dataset, chips, conditions=None, *, scheme="rquant",
                         precision=8, exclude=None, offsets=(0,), progress=log_progress,
                         metadata=None, allow_high_rate=False):
  """Post-training quantization: quantizes a float model, then evaluates it on chips.

  ``model`` is a float Keras model or the path of an .h5 or .keras file (read by
  ``tfbet.safe_loading``: data, never code);
  ``scheme`` a preset name (or ``QuantizationScheme``) at ``precision`` bits; ``exclude`` as in
  ``tfbet.quantize_model``. ``dataset`` yields (images, labels) batches exactly as the model
  expects them: nothing is rescaled or whitened here. Returns ``Results`` (see ``evaluate``);
  their ``model["coverage"]`` states the share of parameters in faulty memory.
  """
  if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
    from tfbet import safe_loading  # pylint: disable=g-import-not-at-top  (loads Keras models)
    model = safe_loading.load_model(os.fsdecode(model))
  if quantize_configs.is_quantized(model):
    raise ValueError(f"model {model.name!r} is already quantized; use tfbet.evaluation.evaluate")
  if not isinstance(scheme, quantization.QuantizationScheme):
    scheme = quantization.get_scheme(scheme, precision)
  elif scheme.precision != precision:
    raise ValueError(f"scheme has precision {scheme.precision}, but precision={precision}")
  qmodel = quantize_configs.quantize_model(model, scheme, exclude=exclude)
  metadata = dict(metadata or {}, post_training_quantization=True)
  return evaluate(qmodel, dataset, chips, conditions, offsets=offsets, progress=progress,
                  metadata=metadata, allow_high_rate=allow_high_rate)
