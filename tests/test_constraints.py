"""Tests of tfbet.constraints (weight clipping, Sec. 4.2)."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tfbet.compat import keras
from tfbet.constraints import WeightClip


def test_weight_clip_equals_numpy_clip():
  values = np.random.default_rng(0).normal(scale=0.3, size=(50, 7)).astype(np.float32)
  clipped = WeightClip(0.1)(tf.constant(values)).numpy()
  np.testing.assert_array_equal(clipped, np.clip(values, np.float32(-0.1), np.float32(0.1)))


def test_weights_inside_the_range_are_left_unchanged():
  values = np.linspace(-0.25, 0.25, 101)
  clipped = WeightClip(0.25)(tf.constant(values, tf.float64)).numpy()
  np.testing.assert_array_equal(clipped, values)


def test_clipping_keeps_the_dtype_of_the_weights():
  assert WeightClip(0.5)(tf.ones([3], tf.float16)).dtype == tf.float16
  assert WeightClip(0.5)(tf.ones([3], tf.float64)).dtype == tf.float64


def test_optimizer_step_leaves_constrained_weights_inside_the_range():
  layer = keras.layers.Dense(
      4, kernel_initializer="zeros", kernel_constraint=WeightClip(0.05),
      bias_constraint=WeightClip(0.05))
  layer.build((None, 3))
  optimizer = keras.optimizers.SGD(learning_rate=10.0)
  inputs = tf.constant([[1.0, -2.0, 3.0]])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(inputs) * tf.constant([[1.0, -1.0, 2.0, -3.0]]))
  optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights),
                                layer.trainable_weights))
  kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
  # Unconstrained, the step would move every entry by 10 * |gradient| >= 10.
  assert np.all(np.abs(kernel) == np.float32(0.05))
  assert np.all(np.abs(bias) == np.float32(0.05))


def test_config_round_trip_restores_an_equal_constraint():
  constraint = WeightClip(0.125)
  assert constraint.get_config() == {"w_max": 0.125}
  assert WeightClip.from_config(constraint.get_config()) == constraint
  assert WeightClip(0.125) != WeightClip(0.25)


def test_registered_name_deserializes_without_custom_objects():
  serialized = json.loads(json.dumps(keras.constraints.serialize(WeightClip(0.1))))
  assert serialized["registered_name"] == "tfbet>WeightClip"
  restored = keras.constraints.deserialize(serialized)
  assert isinstance(restored, WeightClip) and restored.w_max == 0.1


def test_integer_w_max_is_accepted_as_float():
  assert WeightClip(1).w_max == 1.0


@pytest.mark.parametrize("w_max", [0.0, -0.1, math.nan, math.inf, -math.inf])
def test_w_max_that_is_not_finite_and_positive_raises_value_error(w_max):
  with pytest.raises(ValueError, match="w_max"):
    WeightClip(w_max)


@pytest.mark.parametrize("w_max", ["0.1", None, True, [0.1]])
def test_w_max_that_is_not_a_number_raises_type_error(w_max):
  with pytest.raises(TypeError, match="w_max"):
    WeightClip(w_max)
