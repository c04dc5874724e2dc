"""The linear memory of a quantized model, and loading bit errors into it.

Layout (DESIGN §3): all quantized tensors in the order of ``model.weights``, each weight one
byte, tensors back to back. Weight i of the whole model is byte i; bit b of it has the global
bit address ``8*i + b``. A chip's error masks for the whole memory are computed once and cut
into the per-tensor masks of the ``BitErrorQuantizer``s.

Memory image file (``export_image`` / ``import_image``): a NumPy ``.npz`` with

* ``codes``: uint8 [W], the stored bytes (low ``precision`` bits used);
* ``ranges``: float32 [T, 2], (q_min, q_max) of each tensor;
* ``layout``: JSON string, a list of {"name", "shape", "offset", "size"} in memory order;
* ``scheme``: JSON string of the ``QuantizationScheme``; ``format``: "tfbet-memory-image/1".
"""
import dataclasses
import io
import json
import zipfile

import numpy as np
import tensorflow as tf

from tfbet import ops
from tfbet import quantization
from tfbet import quantize_configs

IMAGE_FORMAT = "tfbet-memory-image/1"


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
    return {"name": self.name, "shape": list(self.shape), "offset": self.offset,
            "size": self.size}


class MemoryLayout:
  """The quantized tensors of a model and where their bytes live."""

  def __init__(self, model):
    if not quantize_configs.is_quantized(model):
      raise ValueError(f"model {model.name!r} is not quantized; use tfbet.quantize_model first")
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
  for name, flat in zip(("flip", "set", "clear"), (flip, set_mask, clear_mask)):
    parts = (mem.split(np.asarray(flat, dtype=np.uint8)) if flat is not None
             else [None] * len(mem.slots))
    for slot, part in zip(mem.slots, parts):
      slot.qvars[name].assign(tf.zeros(slot.shape, tf.uint8) if part is None else part)


def clear_masks(model_or_layout):
  """All masks zero: the clean quantized model, bit for bit."""
  load_masks(model_or_layout)


def load_chip(model_or_layout, chip, condition, offset=0):
  """Loads ``chip``'s errors at ``condition`` (rate p, or voltage for profiled chips).

  ``offset`` (in bits) shifts where the weights start on a profiled chip's map (App. C.1).
  """
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
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
  return mem


def read_image(path):
  """Reads and validates a memory image file; returns a dict of its fields."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      content = f.read()
    with np.load(io.BytesIO(content), allow_pickle=False) as data:
      image = {k: data[k] for k in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"cannot read memory image {path!r}: {e}") from e
  missing = {"codes", "ranges", "layout", "scheme", "format"} - set(image)
  if missing:
    raise ValueError(f"memory image {path!r} lacks {sorted(missing)}")
  if str(image["format"]) != IMAGE_FORMAT:
    raise ValueError(f"memory image {path!r} has format {image['format']!r}, "
                     f"expected {IMAGE_FORMAT!r}")
  image["layout"] = json.loads(str(image["layout"]))
  image["scheme"] = quantization.QuantizationScheme.from_dict(json.loads(str(image["scheme"])))
  return image


def import_image(model, path):
  """Loads a memory image into a quantized model with the same architecture and scheme.

  The stored codes and ranges are used as they are (``frozen``), and the float weights are set
  to their dequantized values, so the model computes exactly what the exported one did.
  """
  image = read_image(path)
  mem = layout(model)
  if image["scheme"] != mem.scheme:
    raise ValueError(f"memory image scheme {image['scheme']} != model scheme {mem.scheme}")
  expected = [(s["shape"], s["size"]) for s in image["layout"]]
  actual = [(list(s.shape), s.size) for s in mem.slots]
  if expected != actual:
    raise ValueError("memory image layout does not match the model's quantized tensors")
  codes = np.asarray(image["codes"], np.uint8)
  for slot, part, (q_min, q_max) in zip(mem.slots, mem.split(codes), image["ranges"]):
    slot.qvars["codes"].assign(part)
    slot.qvars["range"].assign([q_min, q_max])
    slot.qvars["frozen"].assign(True)
    slot.variable.assign(quantization.dequantize(part, q_min, q_max, mem.scheme))
  return mem


def release_image(model_or_layout):
  """Back to quantizing the float weights (after ``import_image``)."""
  for slot in _as_layout(model_or_layout).slots:
    slot.qvars["frozen"].assign(False)


def _as_layout(model_or_layout):
  if isinstance(model_or_layout, MemoryLayout):
    return model_or_layout
  return MemoryLayout(model_or_layout)
