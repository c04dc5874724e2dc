"""The plan of an evaluation: which chips it measures, at which conditions and offsets, in shards.

A plan is a JSON-able dict, stored in every result file (``tfbet.results``)::

    {"num_shards", "shard_index",
     "chips": [{"name", "chip": <chip.describe()>, "conditions": [...], "offsets": [...]}, ...]}

``chips`` lists the chips of the whole evaluation, all shards, in order; shard i measures
``shard(chips, num_shards, i)``. Conditions are bit error rates p (fractions, random chips) or
voltages normalized by V_min (profiled chips); offsets are bit addresses where the weights start
on a chip (App. C.1). :func:`make_plan` checks what a caller asks for, :func:`check_plan` what a
file holds; both by the same rules (``tfbet.checks``, docs/design.md §3 "Arguments").
"""
from tfbet import checks
from tfbet import chip_models

CONDITION_KINDS = ("rate", "voltage")
# Highest voltage condition (normalized by V_min): no memory runs at ten times V_min, and the
# energy model's v**2 stays finite.
MAX_VOLTAGE = 10.0


def shard(items, num_shards, shard_index):
  """The ``shard_index``-th of ``num_shards`` disjoint, deterministic parts (round robin)."""
  num_shards = checks.count(num_shards, "num_shards", minimum=1, maximum=checks.MAX_SHARDS)
  shard_index = checks.count(shard_index, "shard_index")
  if shard_index >= num_shards:
    raise ValueError(f"shard_index must be in [0, {num_shards - 1}], got {shard_index}")
  return list(items)[shard_index::num_shards]


def condition_kind(chip_list):
  """"rate" when the chips take any bit error rate, "voltage" when they know their own."""
  kinds = {"rate" if chip.conditions is None else "voltage" for chip in chip_list}
  if len(kinds) != 1:
    raise ValueError("chips must be all random (conditions are rates) or all profiled "
                     f"(conditions are voltages), got {[repr(c) for c in chip_list]}")
  return kinds.pop()


def check_condition(value, kind, allow_high_rate=True):
  """A condition of ``kind``: a bit error rate (``checks.rate``) or a voltage in (0, 10]."""
  if kind == "rate":
    return checks.rate(value, "condition (bit error rate p)", allow_high_rate)
  value = checks.real(value, "condition")
  if not 0 < value <= MAX_VOLTAGE:
    raise ValueError(f"a condition of a profiled chip is a voltage in (0, {MAX_VOLTAGE:g}] "
                     f"(normalized by V_min), got {value}")
  return value


def check_offset(value):
  """A bit offset: a count of at most ``checks.MAX_COUNT``."""
  return checks.count(value, "offset", maximum=checks.MAX_COUNT)


def _distinct(values, what):
  if len(set(values)) != len(values):
    duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
    raise ValueError(f"{what} must be distinct, got {duplicates} more than once")
  return values


def _check_shards(num_shards, shard_index, num_chips, what):
  """(num_shards, shard_index) of an evaluation of ``num_chips`` chips; every shard has one."""
  num_shards = checks.count(num_shards, f"{what}num_shards", minimum=1, maximum=checks.MAX_SHARDS)
  shard_index = checks.count(shard_index, f"{what}shard_index")
  if shard_index >= num_shards:
    raise ValueError(f"{what}shard_index must be in [0, {num_shards - 1}], got {shard_index}")
  if num_chips <= shard_index:
    raise ValueError(f"shard {shard_index} of {num_shards} selects no chips: the evaluation has "
                     f"only {num_chips} chip(s); use at most that many shards")
  return num_shards, shard_index


def _count_entries(num_entries, entry, what):
  """Adds the (condition, offset) pairs of a plan entry; ValueError beyond the limit."""
  num_entries += len(entry["conditions"]) * len(entry["offsets"])
  if num_entries > checks.MAX_PLAN_ENTRIES:
    raise ValueError(f"{what}chips x conditions x offsets must be at most "
                     f"{checks.MAX_PLAN_ENTRIES} entries, got more by chip {entry['name']!r}")
  return num_entries


def make_plan(chips, conditions=None, offsets=(0,), num_shards=1, shard_index=0,
              allow_high_rate=False):
  """The plan of an evaluation and the part of it to measure here.

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
  kind = condition_kind(chip_list)
  entries, work, num_entries = [], [], 0
  for chip in chip_list:
    chip_conditions = chip.conditions if conditions is None else conditions
    if chip_conditions is None:
      raise ValueError(f"chip {chip.name!r} has no conditions of its own; pass conditions "
                       "(bit error rates)")
    chip_conditions = [check_condition(c, kind, allow_high_rate) for c in checks.bounded_list(
        chip_conditions, f"chip {chip.name!r}: conditions", checks.MAX_CONDITIONS)]
    chip_offsets = offsets(chip) if callable(offsets) else offsets
    chip_offsets = [checks.count(o, "offset") for o in checks.bounded_list(
        chip_offsets, f"chip {chip.name!r}: offsets", checks.MAX_OFFSETS)]
    entry = {"name": chip.name, "chip": chip.describe(),
             "conditions": chip_conditions, "offsets": chip_offsets}
    num_entries = _count_entries(num_entries, entry, "")
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
    entries.append(entry)
    work.append((chip, chip_conditions, chip_offsets))
  num_shards, shard_index = _check_shards(num_shards, shard_index, len(entries), "")
  plan = {"num_shards": num_shards, "shard_index": shard_index, "chips": entries}
  return plan, shard(work, num_shards, shard_index)


def check_plan(plan, kind):
  """Validates a plan read from a file (or given by a caller); returns it normalized."""
  if not isinstance(plan, dict):
    raise TypeError(f"plan must be a dict, got {type(plan).__name__}")
  if not isinstance(plan["chips"], list):
    raise TypeError("plan chips must be a list")
  checks.bounded_list(plan["chips"], "plan chips", checks.MAX_CHIPS)
  num_shards, shard_index = _check_shards(plan["num_shards"], plan["shard_index"],
                                          len(plan["chips"]), "plan ")
  entries, num_entries = [], 0
  for entry in plan["chips"]:
    name, info = entry["name"], entry["chip"]
    if not isinstance(name, str) or not name or not isinstance(info, dict):
      raise TypeError(f"plan chips need a name and a chip description, got {entry!r}")
    check_chip_name(name, info)
    if not isinstance(entry["conditions"], list) or not isinstance(entry["offsets"], list):
      raise TypeError(f"plan chip {name!r}: conditions and offsets must be lists")
    checks.bounded_list(entry["conditions"], f"plan chip {name!r}: conditions",
                        checks.MAX_CONDITIONS)
    checks.bounded_list(entry["offsets"], f"plan chip {name!r}: offsets", checks.MAX_OFFSETS)
    num_entries = _count_entries(num_entries, entry, "plan ")
    entries.append({"name": name, "chip": dict(info),
                    "conditions": [check_condition(c, kind) for c in entry["conditions"]],
                    "offsets": [check_offset(o) for o in entry["offsets"]]})
    for values, what in ((entry["conditions"], "conditions"), (entry["offsets"], "offsets")):
      _distinct(list(values), f"plan chip {name!r}: {what}")
  _distinct([entry["name"] for entry in entries], "plan chip names")
  return {"num_shards": num_shards, "shard_index": shard_index, "chips": entries}


def check_chip_name(name, info):
  """ValueError unless ``name`` is the name of the chip that ``info`` describes (where the
  chip's kind names its chips, ``chip_models.name_of_description``)."""
  expected = chip_models.name_of_description(info)
  if expected is not None and expected != name:
    raise ValueError(f"chip {name!r} is described as {info}, which is chip {expected!r}")


def plan_difference(plan, other, kind):
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
