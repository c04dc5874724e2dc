"""The one place that imports Keras.

tensorflow-model-optimization only works with Keras 2 (tf-keras); TensorFlow 2.21 switches
``tf.keras`` to it only when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is imported.
Every module of tfbet takes ``keras`` from here, never from ``tf.keras`` or ``import keras``.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if os.environ["TF_USE_LEGACY_KERAS"] != "1":
  raise ImportError(
      "tfbet needs TF_USE_LEGACY_KERAS=1 (tensorflow-model-optimization requires tf-keras); "
      f"found TF_USE_LEGACY_KERAS={os.environ['TF_USE_LEGACY_KERAS']!r}.")

import tf_keras as keras  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow_model_optimization as tfmot  # noqa: E402

__all__ = ["keras", "tfmot"]
