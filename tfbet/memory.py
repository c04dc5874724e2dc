"""The linear memory of a quantized model, and loading bit errors into it.

Layout (docs/design.md §3): all quantized tensors in the order of ``model.weights``, each weight one
byte, tensors back to back. Weight i of the whole model is byte i; bit b of it has the global
bit address ``8*i + b``. A chip's error masks for the whole memory are computed once and cut
into the per-tensor masks of the ``BitErrorQuantizer``s.

Memory image file (``export_image`` / ``import_image``): a NumPy ``.npz`` with

* ``codes``: uint8 [W], the stored bytes (low ``precision`` bits used);
* ``ranges``: float32 [T, 2], (q_min, q_max) of each tensor;
* ``layout``: JSON string, a list of {"name", "shape", "dtype", "offset", "size"} in memory
  order (``dtype``: the float variable's; images written before it was recorded lack it);
* ``scheme``: JSON string of the ``QuantizationScheme``; ``format``: "tfbet-memory-image/1".
"""
import dataclasses
import io
import json

import numpy as np
import tensorflow as tf

from tfbet import archives
from tfbet import checks
from tfbet import files
from tfbet import ops
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import quantizers

IMAGE_FORMAT = "tfbet-memory-image/1"

# The mask variables of every quantizer; writing any of them must also set its ``errors`` flag
# (see tfbet.quantizers), which load_masks, assign_random_flips and assign_masks do.
MASK_NAMES = quantizers.MASK_NAMES


@dataclasses.dataclass
class Slot:
  """One quantized tensor in memory."""
  name: str
  shape: tuple
  offset: int  # in bytes (= weights) from the start of the memory
  size: int
  variable: tf.Variable
  quantizer: object
  qvars: dict

  def describe(self):
    return {"name": self.name, "shape": list(self.shape), "dtype": self.variable.dtype.name,
            "offset": self.offset, "size": self.size}


class MemoryLayout:
  """The quantized tensors of a model and where their bytes live."""

  def __init__(self, model):
    if not quantize_configs.is_quantized(model):
      raise ValueError(f"model {model.name!r} is not quantized; use tfbet.quantize_model first")
    self.model = model
    self.slots = []
    offset = 0
    for variable, quantizer, qvars in quantize_configs.quantized_variables(model):
      shape = tuple(int(d) for d in variable.shape)
      size = int(np.prod(shape, dtype=np.int64))
      self.slots.append(Slot(variable.name, shape, offset, size, variable, quantizer, qvars))
      offset += size
    self.num_weights = offset
    schemes = {slot.quantizer.scheme for slot in self.slots}
    if len(schemes) != 1:
      raise ValueError(f"all quantized tensors must share one scheme, found {schemes}")
    self.scheme = schemes.pop()

  @property
  def precision(self):
    return self.scheme.precision

  def describe(self):
    return [slot.describe() for slot in self.slots]

  def split(self, flat):
    """Cuts a flat array of ``num_weights`` bytes into per-tensor arrays."""
    flat = np.asarray(flat)
    if flat.shape != (self.num_weights,):
      raise ValueError(f"expected a flat array of {self.num_weights} bytes, got {flat.shape}")
    return [flat[s.offset:s.offset + s.size].reshape(s.shape) for s in self.slots]


def layout(model):
  """The ``MemoryLayout`` of a quantized model."""
  return MemoryLayout(model)


@dataclasses.dataclass(frozen=True)
class Coverage:
  """How much of a quantized model sits in faulty memory.

  ``parameters`` counts every value the model stores (trainable weights and non-trainable state
  such as BatchNormalization moving statistics), not tfbet's own masks and ranges;
  ``faulty`` counts those in the memory layout (the ones bit errors can hit).
  """
  faulty: int
  trainable: int
  parameters: int

  @property
  def share(self):
    """faulty / parameters, in [0, 1]."""
    return self.faulty / self.parameters if self.parameters else 0.0

  def to_dict(self):
    return {"faulty_parameters": self.faulty, "trainable_parameters": self.trainable,
            "parameters": self.parameters, "faulty_share": self.share}

  def describe(self):
    return (f"{self.faulty} of {self.parameters} parameters ({100 * self.share:.2f} %) in faulty "
            "memory")


def coverage(model_or_layout):
  """The ``Coverage`` of a quantized model (or of the model of a ``MemoryLayout``)."""
  mem = _as_layout(model_or_layout)
  # The quantizers' own state (masks, codes, ranges, flags), byte state by its int32 words.
  bookkeeping = {id(getattr(v, "variable", v)) for slot in mem.slots for v in slot.qvars.values()}
  for layer in mem.model.layers:
    step = getattr(layer, "optimizer_step", None)
    if step is not None:
      bookkeeping.add(id(step))

  def count(variables):
    return sum(int(np.prod(v.shape, dtype=np.int64)) for v in variables
               if id(v) not in bookkeeping)

  return Coverage(faulty=mem.num_weights, trainable=count(mem.model.trainable_weights),
                  parameters=count(mem.model.weights))


def update_global_range(model_or_layout):
  """Sets the range of every quantizer of a *global* scheme to the range of all weights.

  Per-tensor schemes compute their range from the tensor itself; nothing to do there.
  Works eagerly and inside ``tf.function`` (the RANDBET train step calls it every step).
  """
  mem = _as_layout(model_or_layout)
  if mem.scheme.per_tensor:
    return
  ranges = [quantization.tensor_range(s.variable, mem.scheme) for s in mem.slots]
  q_min, q_max = quantization.combined_range(ranges, mem.scheme)
  for slot in mem.slots:
    slot.qvars["range"].assign(tf.stack([q_min, q_max]))


def load_masks(model_or_layout, flip=None, set_mask=None, clear_mask=None):
  """Writes flat [W] uint8 masks for the whole memory into the quantizers (None = zeros)."""
  mem = _as_layout(model_or_layout)
  any_error = [False] * len(mem.slots)
  for name, flat in zip(MASK_NAMES, (flip, set_mask, clear_mask)):
    parts = (mem.split(np.asarray(flat, dtype=np.uint8)) if flat is not None
             else [None] * len(mem.slots))
    for index, (slot, part) in enumerate(zip(mem.slots, parts)):
      var = slot.qvars[name]
      var.assign(tf.zeros(slot.shape, tf.uint8) if part is None else part)
      any_error[index] |= part is not None and bool(np.any(part))
  for slot, errors in zip(mem.slots, any_error):
    slot.qvars["errors"].assign(errors)


def assign_masks(slot, masks):
  """Writes {mask name: uint8 tensor} into one slot (in-graph too) and raises its flag.

  Masks not named keep their values; the flag says masks are loaded, so the quantizer applies
  them (all zero masks give the clean codes, only at the cost of applying them).
  """
  for name, value in masks.items():
    slot.qvars[name].assign(value)
  slot.qvars["errors"].assign(True)


def clear_slot(slot, names=MASK_NAMES):
  """Zeroes the named masks of one slot (in-graph too) and lowers its flag: no mask work."""
  for name in names:
    slot.qvars[name].assign(tf.zeros(slot.shape, tf.uint8))
  slot.qvars["errors"].assign(False)


def clear_masks(model_or_layout):
  """All masks zero: the clean quantized model, bit for bit."""
  load_masks(model_or_layout)


def load_chip(model_or_layout, chip, condition, offset=0, allow_high_rate=False):
  """Loads ``chip``'s errors at ``condition`` (rate p, or voltage for profiled chips).

  A rate is a fraction (1 % is 0.01); one above 0.5 is refused as a likely percent unless
  ``allow_high_rate`` (``tfbet.checks.rate``). ``offset`` (in bits) shifts where the
  weights start on a profiled chip's map (App. C.1).
  """
  if chip.conditions is None:  # random chips: the condition is a rate
    condition = checks.rate(condition, "condition (bit error rate p)", allow_high_rate)
  mem = _as_layout(model_or_layout)
  flip, set_mask, clear_mask = chip.masks(mem.num_weights, mem.precision, condition,
                                          offset=offset)
  load_masks(mem, flip, set_mask, clear_mask)
  return mem


def assign_random_flips(model_or_layout, seed, rate):
  """Loads a random chip (``seed``, ``rate``) computed in-graph, tensor by tensor.

  For use inside ``tf.function`` (training): each tensor's mask is the slice of the chip's
  memory-wide mask at its bit offset, so it equals ``load_chip(RandomChip(seed), rate)``.
  """
  mem = _as_layout(model_or_layout)
  for slot in mem.slots:
    slot.qvars["flip"].assign(ops.random_flip_mask(
        slot.shape, seed, rate, precision=mem.precision, offset=8 * slot.offset))
    slot.qvars["errors"].assign(True)


def memory_contents(model_or_layout):
  """(codes [W] uint8, ranges [T, 2] float32): what the clean memory holds right now."""
  mem = _as_layout(model_or_layout)
  update_global_range(mem)
  codes, ranges = [], []
  for slot in mem.slots:
    c, q_min, q_max = slot.quantizer.clean_codes(slot.variable, slot.qvars)
    codes.append(np.asarray(c).reshape(-1))
    ranges.append([float(q_min), float(q_max)])
  flat = np.concatenate(codes) if codes else np.zeros([0], np.uint8)
  return flat.astype(np.uint8), np.asarray(ranges, np.float32).reshape(-1, 2)


def export_image(model, path):
  """Writes the memory image of ``model`` (see the module docstring) to ``path``."""
  mem = layout(model)
  codes, ranges = memory_contents(mem)
  buffer = io.BytesIO()  # zip needs a seekable file; GFile paths may be remote
  np.savez(buffer, codes=codes, ranges=ranges, layout=json.dumps(mem.describe()),
           scheme=json.dumps(mem.scheme.to_dict()), format=IMAGE_FORMAT)
  with files.atomic_open(path, "wb") as f:
    f.write(buffer.getvalue())
  return mem


def read_image(path):
  """Reads and validates a memory image file; returns a dict of its fields.

  Every field is checked against the others (layout against codes and ranges, codes against
  the scheme's precision, ranges finite, ordered and consistent with the scheme); a damaged
  file fails with a ValueError naming the file and the field.
  """
  where = f"memory image {path!r}"
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      content = f.read()
  except (OSError, tf.errors.OpError) as e:
    raise ValueError(f"cannot read {where}: {e}") from e
  try:
    image = archives.read_npz(content, where)
  except ValueError as e:
    raise ValueError(f"cannot read {where}: {e}") from e
  missing = {"codes", "ranges", "layout", "scheme", "format"} - set(image)
  if missing:
    raise ValueError(f"{where} lacks {sorted(missing)}")
  if _text_field(image, "format", where) != IMAGE_FORMAT:
    raise ValueError(f"{where} has format {str(image['format'])!r}, expected {IMAGE_FORMAT!r}")
  scheme = _json_field(image, "scheme", where)
  try:
    image["scheme"] = quantization.QuantizationScheme.from_dict(scheme)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: field 'scheme' is not a quantization scheme: {e}") from e
  image["layout"] = _check_layout_field(_json_field(image, "layout", where), where)
  _check_codes(image, where)
  _check_ranges(image, where)
  return image


def _text_field(image, key, where):
  value = image[key]
  if value.shape != () or value.dtype.kind != "U":
    raise ValueError(f"{where}: field {key!r} must be a text scalar, got {value.dtype} "
                     f"{value.shape}")
  return str(value)


def _json_field(image, key, where):
  try:
    return json.loads(_text_field(image, key, where))
  except (ValueError, RecursionError) as e:
    raise ValueError(f"{where}: field {key!r} is not valid JSON ({str(e)[:200]})") from e


def _check_layout_field(entries, where):
  """A list of {"name", "shape", ["dtype",] "offset", "size"}, tensors back to back from 0."""
  if not isinstance(entries, list):
    raise ValueError(f"{where}: field 'layout' must be a list of tensors, got "
                     f"{type(entries).__name__}")
  offset = 0
  for i, entry in enumerate(entries):
    field = f"layout[{i}]"
    if not isinstance(entry, dict) or set(entry) - {"dtype"} != {"name", "shape", "offset",
                                                                 "size"}:
      raise ValueError(f"{where}: field {field} must be an object with keys name, shape, "
                       f"offset, size (and dtype); got {str(entry)[:200]}")
    for key in ("name", "dtype"):
      if key in entry and (not isinstance(entry[key], str) or not entry[key]):
        raise ValueError(f"{where}: field {field}.{key} must be a non-empty string, got "
                         f"{str(entry[key])[:200]!r}")
    shape = entry["shape"]
    if (not isinstance(shape, list) or
        not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
      raise ValueError(f"{where}: field {field}.shape must be a list of non-negative integers, "
                       f"got {shape!r}")
    size = int(np.prod(shape, dtype=object)) if shape else 1
    if entry["size"] != size or isinstance(entry["size"], bool):
      raise ValueError(f"{where}: field {field}.size is {entry['size']!r} but shape {shape} "
                       f"has {size} weights")
    if entry["offset"] != offset or isinstance(entry["offset"], bool):
      raise ValueError(f"{where}: field {field}.offset is {entry['offset']!r}, expected {offset} "
                       "(tensors are stored back to back)")
    offset += size
  return entries


def _check_codes(image, where):
  codes = image["codes"]
  num_weights = sum(entry["size"] for entry in image["layout"])
  if codes.dtype != np.uint8 or codes.shape != (num_weights,):
    raise ValueError(f"{where}: field 'codes' must be uint8 [{num_weights}] (the layout's "
                     f"weights), got {codes.dtype} {list(codes.shape)}")
  mask = image["scheme"].code_mask
  if codes.size and int(codes.max()) > mask:
    index = int(np.argmax(codes > mask))
    raise ValueError(f"{where}: field 'codes' byte {index} is {int(codes[index])}, above the "
                     f"{image['scheme'].precision}-bit codes of the scheme (max {mask})")


def _check_ranges(image, where):
  ranges, scheme = image["ranges"], image["scheme"]
  count = len(image["layout"])
  if ranges.dtype != np.float32 or ranges.shape != (count, 2):
    raise ValueError(f"{where}: field 'ranges' must be float32 [{count}, 2] (one (q_min, q_max) "
                     f"per layout tensor), got {ranges.dtype} {list(ranges.shape)}")
  for i, (q_min, q_max) in enumerate(ranges):
    if not (np.isfinite(q_min) and np.isfinite(q_max) and q_min <= q_max):
      raise ValueError(f"{where}: field 'ranges' row {i} is ({q_min}, {q_max}); need finite "
                       "q_min <= q_max")
    if not scheme.asymmetric and q_min != -q_max:
      raise ValueError(f"{where}: field 'ranges' row {i} is ({q_min}, {q_max}), but the scheme is "
                       "symmetric (q_min = -q_max)")
  if not scheme.per_tensor and count and not np.all(ranges == ranges[0]):
    raise ValueError(f"{where}: field 'ranges' differs between tensors, but the scheme's range "
                     "is global (one range for all tensors)")


def import_image(model, path):
  """Loads a memory image into a quantized model with the same architecture and scheme.

  The stored codes and ranges are used as they are (``frozen``), and the float weights are set
  to their dequantized values, so the model computes exactly what the exported one did.
  """
  image = read_image(path)
  mem = layout(model)
  if image["scheme"] != mem.scheme:
    raise ValueError(f"memory image {path!r}: field 'scheme' {image['scheme']} != model scheme "
                     f"{mem.scheme}")
  _check_same_layout(image["layout"], mem, path)
  for slot, part, (q_min, q_max) in zip(mem.slots, mem.split(image["codes"]), image["ranges"]):
    slot.qvars["codes"].assign(part)
    slot.qvars["range"].assign([q_min, q_max])
    slot.qvars["frozen"].assign(True)
    slot.variable.assign(quantization.dequantize(part, q_min, q_max, mem.scheme))
  return mem


def _check_same_layout(entries, mem, path):
  """Refuses an image whose tensors differ from the model's in number, order, name, shape or
  dtype, naming the first difference (equal shapes alone would load weights into the wrong
  tensors)."""
  where = f"memory image {path!r}: field 'layout'"
  model_names = [slot.name for slot in mem.slots]
  for i, (entry, slot) in enumerate(zip(entries, mem.slots)):
    if entry["name"] != slot.name:
      hint = (f"; the model has it at position {model_names.index(entry['name'])} (another "
              "order)" if entry["name"] in model_names else "")
      raise ValueError(f"{where}: tensor {i} is {entry['name']!r}, the model's is "
                       f"{slot.name!r}{hint}")
    if entry["shape"] != list(slot.shape):
      raise ValueError(f"{where}: tensor {i} ({slot.name!r}) has shape {entry['shape']}, the "
                       f"model's {list(slot.shape)}")
    if "dtype" in entry and entry["dtype"] != slot.variable.dtype.name:
      raise ValueError(f"{where}: tensor {i} ({slot.name!r}) has dtype {entry['dtype']!r}, the "
                       f"model's {slot.variable.dtype.name!r}")
  if len(entries) != len(mem.slots):
    raise ValueError(f"{where} has {len(entries)} tensors, the model's quantized tensors are "
                     f"{len(mem.slots)}")


def release_image(model_or_layout):
  """Back to quantizing the float weights (after ``import_image``)."""
  for slot in _as_layout(model_or_layout).slots:
    slot.qvars["frozen"].assign(False)


def _as_layout(model_or_layout):
  if isinstance(model_or_layout, MemoryLayout):
    return model_or_layout
  return MemoryLayout(model_or_layout)
