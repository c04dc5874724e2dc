"""tfbet: bit error robustness for quantized Keras models (Stutz et al., MLSys 2021)."""
import os

# Must happen before TensorFlow is imported anywhere (tfmot needs Keras 2).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfbet import compat  # noqa: E402,F401

__version__ = "0.1.0"
