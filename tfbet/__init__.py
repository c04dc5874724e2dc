"""tfbet: bit error robustness for quantized Keras models (Stutz et al., MLSys 2021).

The public API; see README.md. Importing tfbet sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow
loads (tensorflow-model-optimization needs tf-keras; ``tfbet.compat`` refuses, saying how to fix
it, if Keras 3 is already in use) and loads the compiled bit error op.
"""
# pylint: disable=g-import-not-at-top,wrong-import-position
from tfbet import compat  # noqa: E402  (first: checks and sets TF_USE_LEGACY_KERAS)
from tfbet import ops  # noqa: E402
from tfbet import quantization  # noqa: E402
from tfbet import quantizers  # noqa: E402
from tfbet import quantize_configs  # noqa: E402
from tfbet import constraints  # noqa: E402
from tfbet import layers  # noqa: E402
from tfbet import memory  # noqa: E402
from tfbet import chips  # noqa: E402
from tfbet import energy  # noqa: E402
from tfbet import training  # noqa: E402
from tfbet import data  # noqa: E402
from tfbet import evaluation  # noqa: E402
from tfbet import models  # noqa: E402

from tfbet.constraints import WeightClip  # noqa: E402
from tfbet.evaluation import evaluate_float_model  # noqa: E402
from tfbet.layers import BatchNormalization, GroupNormalization  # noqa: E402
from tfbet.quantization import QuantizationScheme, get_scheme  # noqa: E402
from tfbet.quantize_configs import quantize_model, quantize_scope  # noqa: E402
from tfbet.quantizers import BitErrorQuantizer  # noqa: E402
from tfbet.training import BitErrorTrainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BatchNormalization", "BitErrorQuantizer", "BitErrorTrainer", "GroupNormalization",
    "QuantizationScheme", "WeightClip", "chips", "compat", "constraints", "data", "energy",
    "evaluate_float_model", "evaluation",
    "get_scheme", "layers", "memory", "models", "ops", "quantization", "quantize_configs",
    "quantize_model", "quantize_scope", "quantizers", "training",
]
