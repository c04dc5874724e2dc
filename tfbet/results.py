"""Results of an evaluation: error counts, their file format, merging and statistics.

RErr is the test error after injecting bit errors into the stored weights (Sec. 5, "Metrics").
Results are *counts*: the number of misclassified test examples per (chip, condition, offset),
the clean count (all masks zero) and the number of test examples n (``tfbet.evaluation``
measures them). Counts from shards (disjoint sets of chips) therefore merge exactly
(:func:`merge`), and every statistic is computed from counts afterwards: per condition the mean,
standard deviation, minimum and maximum of RErr over chips (a chip's RErr at a condition is the
mean of errors / n over its offsets), and the bound of Prop. 1 (App. C.2).

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

The plan (``tfbet.evaluation_plan``) makes a file self-checking: its chips must be the shard
``shard_index`` of the plan's chip list, described as the plan describes them, and every entry
must be one of the plan's (chip, condition, offset); :meth:`Results.missing` lists what is not
measured yet. :func:`merge` accepts only shards of one plan, each shard once, each complete,
unless told to merge a partial set (which the merged result then shows). Files without a plan
(older tfbet) are read but cannot be merged.

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
digest of all labels (``tfbet.result_identity.digest_of_examples``). Files of older versions
carry a bare sha256 that depended on the batch size; they are matched only with each other
(equal at equal batch sizes), and merging or comparing one with a current file is refused with a
message to evaluate it again.

The CSV next to it has one row per entry (``chip,<condition_kind>,offset,errors,n,rerr``) and a
first row ``clean,,,<clean errors>,n,<clean error>``.
"""
import base64
import binascii
import csv
import dataclasses
import fractions
import json
import math
import numbers
import re

import numpy as np

from tfbet import checks
from tfbet import evaluation_plan
from tfbet import files
from tfbet import result_identity

FORMAT = "tfbet-eval/1"
CONDITION_KINDS = evaluation_plan.CONDITION_KINDS
# Default confidence parameter of Prop. 1: the bound holds with probability 1 - delta = 99 %.
DEFAULT_DELTA = 0.01
# Result files larger than this are refused before reading (a 50-chip, 6-rate file is ~20 KB).
MAX_RESULT_BYTES = 1 << 30
MAX_COUNT = checks.MAX_COUNT


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
    self.model = result_identity.check_model(model)
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
    self.plan = None if plan is None else evaluation_plan.check_plan(plan, condition_kind)
    self._grid = {}  # {chip name: (conditions, offsets)} of this shard's chips in the plan
    if self.plan is None:
      for name, info in self.chips.items():
        evaluation_plan.check_chip_name(name, info)
    else:  # The plan's chips are named as described (check_plan).
      planned = {entry["name"]: entry for entry in self._planned_chips()}
      for name, info in self.chips.items():
        if name not in planned:
          raise ValueError(f"chip {name!r} is not one of the chips of shard "
                           f"{self.plan['shard_index']} of {self.plan['num_shards']} in the plan")
        if planned[name]["chip"] != info:
          raise ValueError(f"chip {name!r} is described as {info} but the plan describes it as "
                           f"{planned[name]['chip']}")
      self._grid = {name: (set(entry["conditions"]), set(entry["offsets"]))
                    for name, entry in planned.items()}
    self.metadata = dict(metadata or {})
    self.clean_wrong = (None if clean_wrong is None
                        else self._check_wrong(clean_wrong, self.clean_errors, "clean_wrong"))
    self.errors = {}
    self.wrong = {}  # {(chip, condition, offset): bool [n]} when per_example
    for key, count in (errors or {}).items():
      self.add(*key, count, wrong=None if wrong is None else wrong.get(key))

  def _planned_chips(self):
    """The plan's entries of this shard's chips."""
    return evaluation_plan.shard(self.plan["chips"], self.plan["num_shards"],
                                 self.plan["shard_index"])

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
    key = (chip, evaluation_plan.check_condition(condition, self.condition_kind),
           evaluation_plan.check_offset(offset))
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
    return [(entry["name"], condition, offset) for entry in self._planned_chips()
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
    difference = result_identity.evaluation_difference(item, first, source, sources[0])
    if difference:
      raise ValueError(f"{source} and {sources[0]} do not merge: {difference}")
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
