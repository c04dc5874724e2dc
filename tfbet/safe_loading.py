"""Loading model files as data: nothing stored in a file is ever executed.

Keras's HDF5 loader has no safe mode: a ``Lambda`` layer's marshalled bytecode runs when the
model is rebuilt, a ``TFOpLambda`` calls any TensorFlow function the file names (including ones
that write files), and a ``"module"`` field makes Keras import any module. So the model config
is read and checked first, with plain JSON, before Keras sees any of it:

* every object must be of a class in ``allowed_classes()``: Keras's public layers,
  initializers, regularizers and constraints without ``Lambda``, the tfmot quantization
  wrappers and tfbet's registered objects;
* every ``"module"`` field must name a module of Keras, tfmot or tfbet.

Only then is the model rebuilt from that checked config and its weights read (weights are
arrays, never code). Anything else fails with ``UnsafeModelError`` naming the file and the layer.
HDF5 files (what ``bin/train`` writes) and Keras v3 ``.keras`` archives are accepted: of an
archive, the config is checked the same way, its training config (optimizer, loss: not needed
to evaluate) is dropped, and Keras loads a copy holding only the checked parts.

A file written by an older tfbet (a quantize config without a field this version reads, or
quantizer state of another shape) is refused with a message saying so and what to do: a
missing field would otherwise silently take its default (another quantization scheme).
"""
import dataclasses
import functools
import inspect
import json
import os
import tempfile
import zipfile

import h5py

from tfbet import quantization
from tfbet import quantize_configs
from tfbet.compat import keras

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# The members of a .keras archive tfbet reads; a bound on its config's size (real model
# configs are kilobytes to a few megabytes).
_KERAS_CONFIG, _KERAS_METADATA, _KERAS_WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
MAX_CONFIG_BYTES = 64 * 2**20
ACCEPTED = "HDF5 model files (model.h5, as bin/train writes) and .keras archives"
# Layers whose config carries code (marshalled Python bytecode).
CODE_CARRYING = frozenset({"Lambda"})
_TFMOT_CLASSES = frozenset({"QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer",
                            "QuantizeAwareActivation", "NoOpActivation", "QuantizeAnnotate"})
_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
ALLOWED_MODULE_PREFIXES = ("keras.", "tf_keras.", "tfbet.", "tensorflow_model_optimization.")
_QUANTIZE_CONFIG_CLASSES = frozenset({"BitErrorQuantizeConfig", "tfbet>BitErrorQuantizeConfig"})
# Scheme fields every tfbet version wrote; fields added later have defaults that reproduce
# what the versions before them did, so files without them load.
_FIRST_SCHEME_FIELDS = ("precision", "per_tensor", "asymmetric", "unsigned", "rounding")
OLDER_TFBET_FIX = (
    "Retrain the model with this tfbet (bin/train), or re-export it: with the tfbet version "
    "that wrote it, save the float model (the quantized layers' float weights) and quantize it "
    "here after training (tfbet.quantize_model, or bin/eval --model=FLOAT.h5 --scheme=...)")


class UnsafeModelError(ValueError):
  """A model file that cannot be loaded without running code from it, or is damaged."""


@functools.lru_cache(maxsize=1)
def allowed_classes():
  """The class names a model config may contain."""
  names = set(_TFMOT_CLASSES | _MODEL_CLASSES)
  for module in (keras.layers, keras.initializers, keras.regularizers, keras.constraints):
    names.update(name for name in dir(module) if inspect.isclass(getattr(module, name)))
  names.update(quantize_configs.custom_objects())
  return frozenset(names - CODE_CARRYING)


def check_config(config, path):
  """Raises ``UnsafeModelError`` unless every class and module in ``config`` is allowed."""
  allowed = allowed_classes()

  def walk(node, layer):
    if isinstance(node, dict):
      if "class_name" in node:
        class_name = node["class_name"]
        config = node.get("config")
        if isinstance(config, dict) and isinstance(config.get("name"), str):
          layer = config["name"]
        if not isinstance(class_name, str) or class_name not in allowed:
          why = ("it carries Python code" if class_name in CODE_CARRYING
                 else "it is not a known Keras, tfmot or tfbet class")
          raise UnsafeModelError(
              f"model file {path!r}: layer {layer!r} is of class {class_name!r}; refusing to "
              f"load it because {why} (tfbet loads model files as data only, never code)")
      registered = node.get("registered_name")
      if registered is not None and (not isinstance(registered, str)
                                     or registered not in allowed):
        raise UnsafeModelError(
            f"model file {path!r}: layer {layer!r} names the registered object {registered!r}, "
            "which is not a known Keras, tfmot or tfbet class; refusing to load it")
      module = node.get("module")
      if module is not None and not (isinstance(module, str) and
                                     module.startswith(ALLOWED_MODULE_PREFIXES)):
        raise UnsafeModelError(
            f"model file {path!r}: layer {layer!r} names module {module!r}; only modules of "
            f"{ALLOWED_MODULE_PREFIXES} may be named (importing others runs their code)")
      for value in node.values():
        walk(value, layer)
    elif isinstance(node, list):
      for value in node:
        walk(value, layer)

  try:
    walk(config, None)
  except RecursionError as error:
    raise UnsafeModelError(f"model file {path!r}: model config nested too deeply") from error


def older_tfbet_error(path, what, probably=False):
  written = "was probably written" if probably else "was written"
  return UnsafeModelError(f"model file {path!r} {written} by an older tfbet: {what}. "
                          + OLDER_TFBET_FIX)


def check_tfbet_fields(config, path):
  """Raises ``UnsafeModelError`` if a tfbet quantize config lacks a field this version needs,
  or has one it does not know (a newer tfbet wrote it)."""
  known = {f.name for f in dataclasses.fields(quantization.QuantizationScheme)}

  def check(fields, layer):
    missing = sorted({"weight_attrs", "scheme"} - set(fields))
    scheme = fields.get("scheme")
    if isinstance(scheme, dict):
      missing += [f"scheme.{name}" for name in _FIRST_SCHEME_FIELDS if name not in scheme]
      unknown = sorted(set(scheme) - known)
      if unknown:
        raise UnsafeModelError(
            f"model file {path!r} was written by a newer tfbet: the quantization scheme of "
            f"layer {layer!r} has fields {unknown} this version does not know; load it with "
            "the tfbet version that wrote it (or a newer one)")
    if missing:
      raise older_tfbet_error(
          path, f"the quantize config of layer {layer!r} lacks {missing}, which this version "
          "needs (a default could quantize differently than the model was trained)")

  def walk(node, layer):
    if isinstance(node, dict):
      inner = node.get("config")
      if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        layer = inner["name"]
      if node.get("class_name") in _QUANTIZE_CONFIG_CLASSES:
        check(inner if isinstance(inner, dict) else {}, layer)
      for value in node.values():
        walk(value, layer)
    elif isinstance(node, list):
      for value in node:
        walk(value, layer)

  walk(config, None)


def _signature(path):
  if os.path.isdir(path):
    raise UnsafeModelError(f"model {path!r} is a directory (SavedModel?); only {ACCEPTED} are "
                           "accepted")
  try:
    with open(path, "rb") as f:
      return f.read(len(HDF5_SIGNATURE))
  except OSError as error:
    raise UnsafeModelError(f"cannot read model file {path!r}: {error}") from error


def _parse_config(raw, path, what):
  try:
    config = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
  except (UnicodeDecodeError, ValueError, RecursionError) as error:
    raise UnsafeModelError(f"model file {path!r}: {what} is not valid JSON: "
                           f"{str(error)[:200]}") from error
  if not isinstance(config, dict):
    raise UnsafeModelError(f"model file {path!r}: {what} is not a JSON object")
  return config


def read_keras_archive(path):
  """(checked config without its training config, {member: bytes}) of a ``.keras`` archive."""
  try:
    with zipfile.ZipFile(path) as archive:
      members = {info.filename: info for info in archive.infolist()}
      for name in (_KERAS_CONFIG, _KERAS_WEIGHTS):
        if name not in members:
          raise UnsafeModelError(f"model file {path!r} is a zip archive without {name}; not a "
                                 f".keras model (accepted: {ACCEPTED})")
      if members[_KERAS_CONFIG].file_size > MAX_CONFIG_BYTES:
        raise UnsafeModelError(
            f"model file {path!r}: {_KERAS_CONFIG} declares {members[_KERAS_CONFIG].file_size} "
            f"bytes, more than the limit of {MAX_CONFIG_BYTES} for a model config")
      config = _parse_config(archive.read(_KERAS_CONFIG), path, _KERAS_CONFIG)
      parts = {name: archive.read(name) for name in (_KERAS_METADATA, _KERAS_WEIGHTS)
               if name in members}
  except (zipfile.BadZipFile, OSError, EOFError) as error:
    raise UnsafeModelError(f"cannot read model file {path!r}: {error}") from error
  config.pop("compile_config", None)  # optimizer and loss: evaluation does not compile
  check_config(config, path)
  check_tfbet_fields(config, path)
  return config, parts


def _load_keras_archive(path):
  config, parts = read_keras_archive(path)
  with tempfile.TemporaryDirectory() as folder:
    checked = os.path.join(folder, "checked.keras")
    with zipfile.ZipFile(checked, "w") as archive:
      archive.writestr(_KERAS_CONFIG, json.dumps(config))
      for name, data in parts.items():
        archive.writestr(name, data)
    try:
      with quantize_configs.quantize_scope():
        return keras.models.load_model(checked, compile=False, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as error:
      if _weights_mismatch(error):
        raise older_tfbet_error(
            path, "its stored weights do not match the variables this version creates "
            f"({str(error)[:300]})", probably=True) from error
      raise UnsafeModelError(f"cannot load model file {path!r}: {str(error)[:500]}") from error


def read_config(path):
  """The checked model config (a dict) of an HDF5 model file."""
  signature = _signature(path)
  if signature.startswith(ZIP_SIGNATURE):
    return read_keras_archive(path)[0]
  if signature != HDF5_SIGNATURE:
    raise UnsafeModelError(f"model file {path!r} is neither an HDF5 file nor a .keras "
                           f"archive; only {ACCEPTED} are accepted")
  try:
    with h5py.File(path, "r") as f:
      raw = f.attrs.get("model_config")
  except (OSError, ValueError, KeyError) as error:
    raise UnsafeModelError(f"cannot read model file {path!r}: {error}") from error
  if raw is None:
    raise UnsafeModelError(f"model file {path!r} has no model_config attribute (weights only?)")
  config = _parse_config(raw, path, "model_config")
  check_config(config, path)
  check_tfbet_fields(config, path)
  return config


def load_model(path):
  """Rebuilds a (quantized) model from the checked config of ``path`` and loads its weights."""
  if _signature(path).startswith(ZIP_SIGNATURE):
    return _load_keras_archive(path)
  config = read_config(path)
  try:
    with quantize_configs.quantize_scope():
      model = keras.models.model_from_config(config)
  except (ValueError, TypeError, KeyError, OSError) as error:
    raise UnsafeModelError(f"cannot load model file {path!r}: {str(error)[:500]}") from error
  try:
    model.load_weights(path)
  except (ValueError, TypeError, KeyError, OSError) as error:
    if quantize_configs.is_quantized(model) and _weights_mismatch(error):
      raise older_tfbet_error(
          path, "its stored weights do not match the variables this version creates for its "
          f"quantized layers ({str(error)[:300]})", probably=True) from error
    raise UnsafeModelError(f"cannot load model file {path!r}: {str(error)[:500]}") from error
  return model


def _weights_mismatch(error):
  """True for Keras's errors about a layer's variable count or shapes."""
  text = str(error).lower()
  return "mismatch" in text or "incompatible" in text or (
      "expected" in text and "variables" in text)
