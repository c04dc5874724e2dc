"""tfbet: bit error robustness for quantized Keras models (Stutz et al., MLSys 2021).

The public API; see README.md. Importing tfbet sets ``TF_USE_LEGACY_KERAS=1`` (or fails saying
how to fix a Keras 3 setting; see ``tfbet.compat``) and nothing else: its modules, and with them
TensorFlow and the compiled bit error op, load on first use (``tfbet.ops``,
``tfbet.BitErrorTrainer``, ``from tfbet import chips``). So the binaries can set TensorFlow's
log level before TensorFlow loads, and ``--help`` stays fast.
"""
import importlib

from tfbet import _environment

_environment.check()  # first: before any tfbet module imports TensorFlow

__version__ = "0.1.0"

_MODULES = ("callbacks", "chips", "compat", "constraints", "data", "energy", "evaluation", "layers",
            "memory", "models", "ops", "quantization", "quantize_configs", "quantizers", "training")
_NAMES = {  # name -> the module that defines it
    "BatchNormalization": "layers", "BitErrorQuantizer": "quantizers",
    "BitErrorTrainer": "training", "GroupNormalization": "layers",
    "QuantizationScheme": "quantization", "WeightClip": "constraints",
    "evaluate_float_model": "evaluation", "get_scheme": "quantization",
    "quantize_model": "quantize_configs", "quantize_scope": "quantize_configs",
}

__all__ = sorted(_MODULES + tuple(_NAMES))


def __getattr__(name):
  if name in _MODULES:
    value = importlib.import_module(f"tfbet.{name}")
  elif name in _NAMES:
    value = getattr(importlib.import_module(f"tfbet.{_NAMES[name]}"), name)
  else:
    raise AttributeError(f"module 'tfbet' has no attribute {name!r}")
  globals()[name] = value  # found directly from now on
  return value


def __dir__():
  return sorted(set(globals()) | set(__all__))
