"""Per-layer sensitivity: RErr when only one layer's (or tensor's) memory is faulty.

Which parts of a network need protection (e.g. a few bytes of higher-voltage memory)? For each
group of quantized tensors (one tensor, or all tensors of one layer) the chip's masks are
computed for the *whole* memory exactly as in evaluation (same chip, condition and offset), and
every byte outside the group is cleared. The group therefore meets exactly the bit errors it
meets in the full evaluation: a slice of the same chip (DESIGN §3, memory layout offsets), not
a fresh draw. Groups partition the memory, so together they hold every error of the chip.

Results are one ``evaluation.Results`` per group (and one for the whole memory), with the group
in the metadata, so every statistic of the evaluation module applies.
"""
import dataclasses
import time

import numpy as np

from tfbet import checks
from tfbet import evaluation
from tfbet import lazy_modules

compat = lazy_modules.module("tfbet.compat")  # these two are not needed by bin/sensitivity's
memory = lazy_modules.module("tfbet.memory")  # flags

GROUPINGS = ("tensor", "layer")
FORMAT = "tfbet-sensitivity/1"


def _layer_names(model):
  """{id(variable): name of the layer that reads it, as in the user's float model}.

  tfmot names a quantized layer's wrapper "quant_<name>"; a user knows the layer as <name>.
  """
  names = {}
  for layer in model.layers:
    wrapper = isinstance(layer, compat.tfmot.quantization.keras.QuantizeWrapper)
    for weight in layer.weights:
      names.setdefault(id(weight), layer.layer.name if wrapper else layer.name)
  return names


@dataclasses.dataclass(frozen=True)
class Group:
  """Quantized tensors that are made faulty together."""
  name: str
  tensors: tuple  # "<layer>/<variable>" names, in memory order
  slots: tuple  # indices into MemoryLayout.slots (empty when read from a file)
  num_weights: int


def groups(model, layout, by="layer"):
  """[Group] in memory order: one per quantized tensor, or one per layer (all its tensors).

  A tensor is named "<layer name>/<variable name>" (e.g. "conv1/kernel"), with the layer's
  name in the float model.
  """
  if by not in GROUPINGS:
    raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
  layer_names = _layer_names(model)
  found = {}
  tensors = []
  for index, slot in enumerate(layout.slots):
    layer = layer_names[id(slot.variable)]
    tensor = f"{layer}/{slot.name.split('/')[-1].split(':')[0]}"
    tensors.append(tensor)
    found.setdefault(tensor if by == "tensor" else layer, []).append(index)
  return [Group(name=key, tensors=tuple(tensors[i] for i in indices), slots=tuple(indices),
                num_weights=sum(layout.slots[i].size for i in indices))
          for key, indices in found.items()]


def restrict(masks, layout, group):
  """Copies of the whole-memory ``masks`` (flip, set, clear) with every byte outside ``group``
  cleared."""
  keep = np.zeros(layout.num_weights, dtype=bool)
  for index in group.slots:
    slot = layout.slots[index]
    keep[slot.offset:slot.offset + slot.size] = True
  return tuple(np.where(keep, np.asarray(mask, dtype=np.uint8), np.uint8(0)) for mask in masks)


@dataclasses.dataclass
class Sensitivity:
  """Per-group Results and the whole-memory Results of one evaluation at one condition."""
  condition: float
  by: str
  groups: list  # [Group]
  results: dict  # {group name: Results}
  full: object  # Results with the whole memory faulty

  def to_dict(self):
    return {"format": FORMAT, "condition": self.condition, "by": self.by,
            "groups": [{"name": g.name, "tensors": list(g.tensors), "num_weights": g.num_weights,
                        "results": self.results[g.name].to_dict()} for g in self.groups],
            "full": self.full.to_dict()}

  @classmethod
  def from_dict(cls, record, source="<dict>"):
    """The ``to_dict`` of a Sensitivity, read as data: ValueError naming ``source`` and the
    field unless its groups partition the memory of one model, evaluated on one test set."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
      raise ValueError(f"{source}: not a bin/sensitivity result (format {FORMAT!r})")
    try:
      full = evaluation.Results.from_dict(record["full"], f"{source}: full")
      by = checks.choice(record["by"], "by", GROUPINGS)
      condition = checks.real(record["condition"], "condition", minimum=0.0)
      group_list, results = [], {}
      for index, item in enumerate(checks.bounded_list(record["groups"], "groups",
                                                       full.model.get("num_weights") or 0)):
        where = f"groups[{index}]"
        tensors = tuple(checks.bounded_list(item["tensors"], f"{where}.tensors", checks.MAX_COUNT))
        if not isinstance(item["name"], str) or item["name"] in results or not all(
            isinstance(t, str) for t in tensors):
          raise ValueError(f"{where}: name and tensors must be strings, names distinct")
        group = Group(item["name"], tensors, (), checks.count(
            item["num_weights"], f"{where}.num_weights", maximum=checks.MAX_COUNT))
        results[group.name] = evaluation.Results.from_dict(item["results"],
                                                           f"{source}: {where}.results")
        if (results[group.name].model != full.model or results[group.name].n != full.n
            or results[group.name].data_digest != full.data_digest):
          raise ValueError(f"{where}: another model or test set than the whole memory's")
        group_list.append(group)
      if sum(g.num_weights for g in group_list) != full.model.get("num_weights"):
        raise ValueError("the groups' weights do not add up to the model's num_weights")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
      raise ValueError(f"{source}: invalid bin/sensitivity result ({error})") from error
    return cls(condition, by, group_list, results, full)


def sensitivity(evaluator, chips, condition, by="layer", offsets=(0,), progress=None):
  """RErr with only one group's memory faulty, for every group, chip and offset.

  Args:
    evaluator: ``evaluation.Evaluator`` of the quantized model on its test set.
    chips: random chips (``condition`` is a rate p) or profiled chips (a voltage).
    condition: the one bit error rate / voltage.
    by: "layer" or "tensor" (see :func:`groups`).
    offsets: bit offsets of the weights on the chip (multiples of 8).
    progress: optional callable(str), one line per chip.

  Returns:
    ``Sensitivity``; the model's masks are all zero afterwards.
  """
  layout = evaluator.layout
  chip_list = checks.bounded_list(chips, "chips", checks.MAX_CHIPS)
  if not chip_list:
    raise ValueError("chips must not be empty")
  kinds = {"rate" if chip.conditions is None else "voltage" for chip in chip_list}
  if len(kinds) != 1:
    raise ValueError("chips must be all random (condition is a rate) or all profiled "
                     "(condition is a voltage)")
  kind = kinds.pop()
  offsets = checks.bounded_list(offsets, "offsets", checks.MAX_OFFSETS)
  if not offsets or len(set(offsets)) != len(offsets):
    raise ValueError(f"offsets must be distinct and not empty, got {offsets}")
  group_list = groups(evaluator.model, layout, by)
  model = evaluator.describe_model()
  clean = evaluator.clean_errors()
  described = {chip.name: chip.describe() for chip in chip_list}

  def new_results(metadata):
    return evaluation.Results(model=model, n=evaluator.n, data_digest=evaluator.data_digest,
                              clean_errors=clean, condition_kind=kind, chips=described,
                              metadata=metadata)

  full = new_results({"faulty": "all", "num_faulty_weights": layout.num_weights,
                      "share_of_weights": 1.0})
  per_group = {g.name: new_results({
      "faulty": g.name, "faulty_tensors": list(g.tensors), "num_faulty_weights": g.num_weights,
      "share_of_weights": g.num_weights / layout.num_weights}) for g in group_list}
  started = time.perf_counter()
  try:
    for index, chip in enumerate(chip_list):
      for offset in offsets:
        masks = chip.masks(layout.num_weights, layout.precision, condition, offset=offset)
        memory.load_masks(layout, *masks)
        full.add(chip.name, condition, offset, evaluator.errors())
        for group in group_list:
          memory.load_masks(layout, *restrict(masks, layout, group))
          per_group[group.name].add(chip.name, condition, offset, evaluator.errors())
      if progress is not None:
        progress(f"[{index + 1}/{len(chip_list)}] {chip.name}: whole memory RErr "
                 f"{100 * full.rerr(chip.name, condition):.2f} % "
                 f"({time.perf_counter() - started:.1f} s elapsed)")
  finally:
    memory.clear_masks(layout)
  return Sensitivity(condition=float(condition), by=by, groups=group_list, results=per_group,
                     full=full)
