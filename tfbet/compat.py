"""The one place that imports Keras.

tensorflow-model-optimization only works with Keras 2 (tf-keras); TensorFlow 2.21 routes
``tf.keras`` to it only when ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first used.
Every module of tfbet takes ``keras`` from here, never from ``tf.keras`` or ``import keras``.

Importing tfbet therefore sets ``TF_USE_LEGACY_KERAS=1`` for the whole program (``tf.keras`` is
tf-keras afterwards). If ``tf.keras`` was already resolved to Keras 3, or the variable is set to
something else, tfbet cannot work and the import fails, saying how to fix it.
"""
import os
import sys
import warnings

KERAS_FIX = ("Fix: set the environment variable TF_USE_LEGACY_KERAS=1 before Python imports "
             "TensorFlow (e.g. `TF_USE_LEGACY_KERAS=1 python ...`, or os.environ[...] = '1' at "
             "the very top of the program), or `import tfbet` before anything uses tf.keras; "
             "then build models with `from tfbet.compat import keras` (or tf.keras).")


def _check_environment():
  value = os.environ.get("TF_USE_LEGACY_KERAS")
  if value is not None and value not in ("1", "true", "True"):
    raise ImportError(
        "tfbet needs Keras 2 (tf-keras) because tensorflow-model-optimization does, but "
        f"TF_USE_LEGACY_KERAS={value!r} selects Keras 3. " + KERAS_FIX)
  tf_module = sys.modules.get("tensorflow")
  # tf.keras is a lazy loader until first used, then the module it resolved to.
  # Only vars() are read: any attribute access would make the loader resolve.
  tf_keras_module = vars(tf_module).get("keras") if tf_module is not None else None
  state = vars(tf_keras_module) if tf_keras_module is not None else {}
  resolved = state.get("_tfll_keras_version") or state.get("__name__")
  if resolved is not None and not resolved.startswith("tf_keras"):
    raise ImportError(
        "tfbet needs Keras 2 (tf-keras) because tensorflow-model-optimization does, but this "
        f"program already uses tf.keras as {resolved!r} (Keras 3): tf.keras was used before "
        "TF_USE_LEGACY_KERAS=1 was set. " + KERAS_FIX)
  if value is None and tf_module is not None:
    warnings.warn("tfbet set TF_USE_LEGACY_KERAS=1 after TensorFlow was imported: tf.keras is "
                  "tf-keras (Keras 2) in this program from now on. Set the variable yourself "
                  "before importing TensorFlow to silence this.", stacklevel=3)
  os.environ["TF_USE_LEGACY_KERAS"] = "1"


_check_environment()

import tf_keras as keras  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow_model_optimization as tfmot  # noqa: E402

__all__ = ["KERAS_FIX", "keras", "tfmot"]
