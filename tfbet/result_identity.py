"""Which model and test set a result measured, and whether two results go together.

A result (``tfbet.results``) names its model by ``model`` (name, sha256 of the clean memory,
scheme, coverage: the share of parameters in faulty memory) and its test set by ``data.n`` and a
digest of the examples, their order and their labels (:func:`digest_of_examples`,
docs/design.md §3 "Results"). Results go together (merge, resume, compare) only when these
agree; the ``*_difference`` functions say in plain words why two do not, and are the one place
these checks are written.
"""
import hashlib
import json
import math

import numpy as np

from tfbet import checks
from tfbet import evaluation_plan

# Marks a data digest that does not depend on the batch size (older files lack it).
DATA_DIGEST_PREFIX = "examples-sha256:"
COVERAGE_FIELDS = ("faulty_parameters", "trainable_parameters", "parameters", "faulty_share")


def check_coverage(coverage, num_weights):
  """``model.coverage`` of a result: whole counts that agree with each other and the share."""
  if not isinstance(coverage, dict):
    raise checks.ArgumentTypeError(f"model.coverage must be a dict with {COVERAGE_FIELDS}, got "
                                   f"{coverage!r:.100}")
  missing = [key for key in COVERAGE_FIELDS if key not in coverage]
  if missing:
    raise ValueError(f"model.coverage lacks {missing}")
  counts = {key: checks.integer(coverage[key], f"model.coverage.{key}", 0, checks.MAX_COUNT)
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


def check_model(model):
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
    model["num_weights"] = checks.integer(model["num_weights"], "model.num_weights", 0,
                                          checks.MAX_COUNT)
  if model.get("scheme") is not None and not isinstance(model["scheme"], dict):
    raise checks.ArgumentTypeError(f"model.scheme must be a dict, got {model['scheme']!r:.100}")
  if model.get("coverage") is not None:  # Absent in files of older versions: not recorded.
    model["coverage"] = check_coverage(model["coverage"], model.get("num_weights"))
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



def evaluation_difference(results, other, source, other_source, same_shard=False):
  """Why ``results`` (named ``source``) is no part of the evaluation that ``other`` is part of,
  in words; None if it is one.

  Parts of one evaluation (the shards that merge; an interrupted run and the run that resumes
  it, which are also the same shard: ``same_shard``) have the same model, test set, kind of
  conditions, clean errors (and per-example clean errors, or none) and plan.
  """
  difference = (model_difference(results.model, other.model)
                or data_difference(results, other, source, other_source)
                or kind_difference(results, other))
  if difference:
    return difference
  if results.clean_errors != other.clean_errors:
    return (f"clean errors differ: {results.clean_errors} vs {other.clean_errors} (one model on "
            "one test set counts the same)")
  if results.per_example != other.per_example or (
      results.per_example and not np.array_equal(results.clean_wrong, other.clean_wrong)):
    return ("per-example clean errors differ (one has none, or they mark other examples); "
            "evaluate both the same way")
  for name, item in ((source, results), (other_source, other)):
    if item.plan is None:
      return f"{name} has no plan (written by an older tfbet)"
  difference = evaluation_plan.plan_difference(other.plan, results.plan, other.condition_kind)
  if difference:
    return (f"{source} is not a shard of the same evaluation as {other_source}: it plans "
            f"{difference}")
  if same_shard and results.plan["shard_index"] != other.plan["shard_index"]:
    return (f"{source} is shard {results.plan['shard_index']} of the evaluation, {other_source} "
            f"shard {other.plan['shard_index']}")
  return None


def describe_model(model_info):
  """'<name>: W of N parameters (S %) in faulty memory' from a result's ``model`` field."""
  cov = model_info.get("coverage")
  if not cov:
    share = "share of its parameters in faulty memory not recorded"
    return f"model {model_info.get('name')} ({model_info.get('num_weights')} weights, {share})"
  return (f"model {model_info.get('name')}: {cov['faulty_parameters']} of {cov['parameters']} "
          f"parameters ({100 * cov['faulty_share']:.2f} %) in faulty memory")

