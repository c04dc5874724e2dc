"""The environment tfbet needs before TensorFlow loads; imports nothing heavy.

``import tfbet`` runs :func:`check` first (see ``tfbet.compat``), so that TF_USE_LEGACY_KERAS=1
is set before any tfbet module imports TensorFlow, and the binaries can set TensorFlow's log
level before TensorFlow loads (``tfbet/cli/launch.py``).
"""
import os
import sys
import warnings

KERAS_FIX = ("Fix: set the environment variable TF_USE_LEGACY_KERAS=1 before Python imports "
             "TensorFlow (e.g. `TF_USE_LEGACY_KERAS=1 python ...`, or os.environ[...] = '1' at "
             "the very top of the program), or `import tfbet` before anything uses tf.keras; "
             "then build models with `from tfbet.compat import keras` (or tf.keras).")


def check():
  """Sets TF_USE_LEGACY_KERAS=1, or fails saying how to fix a Keras 3 setting."""
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


