"""The one place that imports Keras.

tensorflow-model-optimization only works with Keras 2 (tf-keras); TensorFlow 2.21 routes
``tf.keras`` to it only when ``TF_USE_LEGACY_KERAS=1`` is set before ``tf.keras`` is first used.
Every module of tfbet takes ``keras`` from here, never from ``tf.keras`` or ``import keras``, and
what it needs from private Keras or tfmot modules too.

Importing tfbet therefore sets ``TF_USE_LEGACY_KERAS=1`` for the whole program (``tf.keras`` is
tf-keras afterwards). If ``tf.keras`` was already resolved to Keras 3, or the variable is set to
something else, tfbet cannot work and the import fails, saying how to fix it.
"""
from tfbet._environment import KERAS_FIX  # noqa: E402,F401
from tfbet._environment import check as _check_environment  # noqa: E402

_check_environment()

import tf_keras as keras  # noqa: E402  pylint: disable=g-import-not-at-top
import tensorflow_model_optimization as tfmot  # noqa: E402
# The class of functional models, which tf-keras does not name publicly (tfbet's QuantizedModel
# is one). Private Keras and tfmot modules are imported here only.
from tf_keras.src.engine.functional import Functional  # noqa: E402

__all__ = ["Functional", "KERAS_FIX", "keras", "tfmot"]
