"""Evaluation results of several models side by side (Fig. 2, Fig. 7).

``bin/eval --merge`` joins shards of *one* model; a comparison puts *different* models next to
each other. It is only meaningful on the same test set (same n and data digest) and the same
kind of condition (bit error rates or voltages), so :func:`check_comparable` refuses anything
else. Every cell states over how many chips it was computed, and :func:`chip_sets_differ`
names the conditions at which the models met different chips, so that a table never silently
compares a model on 50 chips with another on 2.
"""
import dataclasses

from tfbet import result_identity
from tfbet import results as results_lib


def check_comparable(results_list, labels=None, sources=None):
  """Validates ``results_list`` (``results.Results``) for a comparison; returns the labels.

  Args:
    results_list: non-empty sequence of Results on one test set and one condition kind.
    labels: one distinct, non-empty name per result; default: the models' names (made distinct
      by their position if two models share a name).
    sources: what a refusal calls each result (e.g. its file); default ``results_list[i]``.
  """
  results_list = list(results_list)
  if not results_list:
    raise ValueError("results_list must hold at least one Results")
  for index, item in enumerate(results_list):
    if not isinstance(item, results_lib.Results):
      raise TypeError(f"results_list[{index}] must be evaluation.Results, got "
                      f"{type(item).__name__}")
  sources = ([f"results_list[{i}]" for i in range(len(results_list))] if sources is None
             else [str(source) for source in sources])
  first = results_list[0]
  for source, item in zip(sources[1:], results_list[1:]):
    difference = (result_identity.data_difference(item, first, source, sources[0])
                  or result_identity.kind_difference(item, first))
    if difference:
      raise ValueError(f"{source} and {sources[0]} do not compare: {difference}; only results "
                       "on the same test set and of the same kind (rates or voltages) compare")
  if labels is None:
    names = [str(item.model.get("name") or f"model {i}") for i, item in enumerate(results_list)]
    labels = [name if names.count(name) == 1 else f"{name} #{i}" for i, name in enumerate(names)]
  labels = [str(label) for label in labels]
  if len(labels) != len(results_list):
    raise ValueError(f"need one label per result: {len(labels)} labels for "
                     f"{len(results_list)} results")
  if any(not label for label in labels) or len(set(labels)) != len(labels):
    raise ValueError(f"labels must be non-empty and distinct, got {labels}")
  return labels


@dataclasses.dataclass(frozen=True)
class RateRow:
  """One bit error rate: per model its ``ConditionSummary`` (None if not evaluated there)."""
  rate: float
  summaries: tuple


def rate_rows(results_list, delta=results_lib.DEFAULT_DELTA):
  """[RateRow] over the union of the models' rates, in increasing order."""
  results_list = list(results_list)
  check_comparable(results_list)
  if results_list[0].condition_kind != "rate":
    raise ValueError("rate_rows needs results over bit error rates (random chips)")
  by_model = [{row.condition: row for row in item.summary(delta)} for item in results_list]
  rates = sorted(set().union(*by_model))
  return [RateRow(rate, tuple(rows.get(rate) for rows in by_model)) for rate in rates]


def chip_sets_differ(results_list):
  """{condition: [chip names per model]} where the models were evaluated on different chips."""
  results_list = list(results_list)
  differ = {}
  conditions = sorted(set().union(*(item.conditions for item in results_list)))
  for condition in conditions:
    sets = [sorted({c for c, v, _ in item.errors if v == condition}, key=results_lib.natural_key)
            for item in results_list]
    if any(s != sets[0] for s in sets[1:]):
      differ[condition] = sets
  return differ


@dataclasses.dataclass(frozen=True)
class VoltageCell:
  """RErr of one model on one profiled chip at one voltage: mean, min, max over offsets."""
  mean: float
  min: float
  max: float
  num_offsets: int


def voltage_cell(results, chip, voltage):
  """The ``VoltageCell`` of ``results`` for ``chip`` at ``voltage``, or None if not evaluated."""
  offsets = results.offsets(chip, voltage)
  if not offsets:
    return None
  per_offset = [results.errors[(chip, voltage, o)] / results.n for o in offsets]
  return VoltageCell(mean=results.rerr(chip, voltage), min=min(per_offset), max=max(per_offset),
                     num_offsets=len(offsets))


def voltage_rows(results_list):
  """[(chip, voltage, (VoltageCell or None per model))] over every profiled chip and voltage."""
  results_list = list(results_list)
  check_comparable(results_list)
  if results_list[0].condition_kind != "voltage":
    raise ValueError("voltage_rows needs results over voltages (profiled chips)")
  chips = sorted(set().union(*(item.chip_names for item in results_list)),
                 key=results_lib.natural_key)
  rows = []
  for chip in chips:
    voltages = sorted({v for item in results_list for c, v, _ in item.errors if c == chip})
    for voltage in voltages:
      rows.append((chip, voltage, tuple(voltage_cell(item, chip, voltage)
                                        for item in results_list)))
  return rows
