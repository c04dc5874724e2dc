"""Tests of tfbet.layers: reparameterized group and batch normalization (App. E)."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tfbet.compat import keras
from tfbet.constraints import WeightClip
from tfbet.layers import BatchNormalization
from tfbet.layers import GroupNormalization


def numpy_group_norm(x, groups, alpha_prime, beta, epsilon):
  """Group norm (Wu & He, 2018) on NHWC input with scale 1 + alpha', in float64."""
  n, h, w, c = x.shape
  grouped = x.astype(np.float64).reshape(n, h, w, groups, c // groups)
  mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
  variance = grouped.var(axis=(1, 2, 4), keepdims=True)
  normalized = ((grouped - mean) / np.sqrt(variance + epsilon)).reshape(n, h, w, c)
  return normalized * (1.0 + alpha_prime) + beta


def numpy_batch_norm(x, mean, variance, alpha_prime, beta, epsilon):
  return (x - mean) / np.sqrt(variance + epsilon) * (1.0 + alpha_prime) + beta


def _random(shape, seed, loc=0.0, scale=1.0):
  return np.random.default_rng(seed).normal(loc, scale, size=shape).astype(np.float32)


def test_group_norm_matches_numpy_with_learned_scale_and_offset():
  x = _random((3, 5, 4, 12), seed=1, loc=2.0, scale=3.0)
  alpha_prime, beta = _random((12,), seed=2), _random((12,), seed=3)
  layer = GroupNormalization(groups=4, epsilon=1e-3)
  layer.build(x.shape)
  layer.gamma.assign(alpha_prime)
  layer.beta.assign(beta)
  np.testing.assert_allclose(layer(x).numpy(),
                             numpy_group_norm(x, 4, alpha_prime, beta, 1e-3),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 3, 12])
def test_group_norm_matches_numpy_for_layer_group_and_instance_norm_extremes(groups):
  x = _random((2, 3, 3, 12), seed=groups)
  layer = GroupNormalization(groups=groups)
  np.testing.assert_allclose(layer(x).numpy(),
                             numpy_group_norm(x, groups, 0.0, 0.0, 1e-5), rtol=1e-4, atol=1e-4)


def test_group_norm_works_on_unknown_batch_and_spatial_sizes():
  layer = GroupNormalization(groups=2)
  normalize = tf.function(
      layer, input_signature=[tf.TensorSpec([None, None, None, 4], tf.float32)])
  x = _random((2, 6, 5, 4), seed=4)
  np.testing.assert_allclose(normalize(x).numpy(), numpy_group_norm(x, 2, 0.0, 0.0, 1e-5),
                             rtol=1e-4, atol=1e-4)


def test_fresh_group_norm_outputs_the_plain_normalized_input():
  x = _random((2, 4, 4, 8), seed=5, loc=-1.0, scale=5.0)
  layer = GroupNormalization(groups=2)
  out = layer(x).numpy()
  np.testing.assert_array_equal(layer.gamma.numpy(), np.zeros(8, np.float32))
  np.testing.assert_allclose(out, numpy_group_norm(x, 2, 0.0, 0.0, 1e-5), rtol=1e-4, atol=1e-4)
  # Per example and group: zero mean, unit variance (up to epsilon).
  grouped = out.reshape(2, 4, 4, 2, 4)
  np.testing.assert_allclose(grouped.mean(axis=(1, 2, 4)), 0.0, atol=1e-5)
  np.testing.assert_allclose(grouped.var(axis=(1, 2, 4)), 1.0, atol=1e-3)


def test_clipped_alpha_prime_keeps_the_scale_near_identity():
  layer = GroupNormalization(groups=1, gamma_constraint=WeightClip(0.1))
  layer.build((None, 4))
  layer.gamma.assign(layer.gamma.constraint(tf.constant([5.0, -5.0, 0.05, 0.0])))
  np.testing.assert_allclose(1.0 + layer.gamma.numpy(), [1.1, 0.9, 1.05, 1.0], rtol=1e-6)


def test_trainable_weights_are_named_gamma_and_beta_and_carry_the_constraints():
  clip = WeightClip(0.2)
  for layer in (GroupNormalization(groups=2, gamma_constraint=clip, beta_constraint=clip),
                BatchNormalization(gamma_constraint=clip, beta_constraint=clip)):
    layer.build((None, 3, 3, 4))
    names = [w.name.split("/")[-1] for w in layer.trainable_weights]
    assert names == ["gamma:0", "beta:0"]
    assert layer.gamma.constraint is clip and layer.beta.constraint is clip


def test_regularizer_penalizes_alpha_prime_so_decay_pulls_towards_identity():
  layer = GroupNormalization(groups=1, gamma_regularizer=keras.regularizers.L2(0.5))
  layer.build((None, 3))
  layer.gamma.assign([1.0, -2.0, 0.0])
  np.testing.assert_allclose(float(tf.add_n(layer.losses)), 0.5 * 5.0, rtol=1e-6)


def test_group_norm_rejects_channels_not_divisible_by_groups():
  with pytest.raises(ValueError, match=r"channel count \(10\).*groups \(4\)"):
    GroupNormalization(groups=4)(tf.zeros([1, 2, 2, 10]))


@pytest.mark.parametrize("kwargs,error", [
    ({"groups": 0}, ValueError), ({"groups": 2.0}, TypeError), ({"epsilon": 0.0}, ValueError),
    ({"epsilon": float("nan")}, ValueError)])
def test_group_norm_rejects_bad_arguments(kwargs, error):
  with pytest.raises(error, match=next(iter(kwargs))):
    GroupNormalization(**kwargs)


def test_batch_norm_in_training_uses_batch_statistics_and_updates_moving_averages():
  x = _random((16, 3, 3, 4), seed=6, loc=1.5, scale=2.0)
  alpha_prime, beta = _random((4,), seed=7), _random((4,), seed=8)
  layer = BatchNormalization(momentum=0.9, epsilon=1e-3)
  layer.build(x.shape)
  layer.gamma.assign(alpha_prime)
  layer.beta.assign(beta)
  mean = x.astype(np.float64).mean(axis=(0, 1, 2))
  variance = x.astype(np.float64).var(axis=(0, 1, 2))
  out = layer(x, training=True).numpy()
  np.testing.assert_allclose(out, numpy_batch_norm(x, mean, variance, alpha_prime, beta, 1e-3),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 + 0.1 * variance, rtol=1e-5)


def test_batch_norm_at_inference_uses_moving_averages():
  x = _random((5, 2, 2, 3), seed=9)
  layer = BatchNormalization(epsilon=1e-5)
  layer.build(x.shape)
  moving_mean, moving_variance = np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0])
  layer.moving_mean.assign(moving_mean)
  layer.moving_variance.assign(moving_variance)
  for out in (layer(x, training=False), layer(x)):
    np.testing.assert_allclose(out.numpy(),
                               numpy_batch_norm(x, moving_mean, moving_variance, 0.0, 0.0, 1e-5),
                               rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean.astype(np.float32))


def test_batch_norm_can_use_batch_statistics_at_inference_without_updating():
  x = _random((8, 2, 2, 3), seed=10, loc=3.0)
  layer = BatchNormalization(batch_statistics_at_inference=True)
  out = layer(x, training=False).numpy()
  mean, variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  np.testing.assert_allclose(out, numpy_batch_norm(x, mean, variance, 0.0, 0.0, 1e-5),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3, np.float32))


def test_batch_norm_accepts_a_training_tensor_inside_tf_function():
  x = _random((6, 4), seed=11, loc=2.0)
  layer = BatchNormalization()
  layer.build(x.shape)
  call = tf.function(lambda inputs, training: layer(inputs, training=training))
  np.testing.assert_allclose(call(x, tf.constant(False)).numpy(),
                             numpy_batch_norm(x, 0.0, 1.0, 0.0, 0.0, 1e-5), rtol=1e-5)
  call(x, tf.constant(True))
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.1 * x.mean(axis=0), rtol=1e-5)


@pytest.mark.parametrize("momentum,error", [(1.5, ValueError), (-0.1, ValueError),
                                            ("0.9", TypeError)])
def test_batch_norm_rejects_momentum_outside_unit_interval(momentum, error):
  with pytest.raises(error, match="momentum"):
    BatchNormalization(momentum=momentum)


@pytest.mark.parametrize("layer", [
    GroupNormalization(groups=3, epsilon=1e-4, gamma_constraint=WeightClip(0.1),
                       beta_constraint=WeightClip(0.2),
                       gamma_regularizer=keras.regularizers.L2(1e-4), name="gn"),
    BatchNormalization(momentum=0.8, epsilon=1e-4, beta_constraint=WeightClip(0.3),
                       batch_statistics_at_inference=True, name="bn"),
], ids=["group", "batch"])
def test_serialization_round_trip_without_custom_objects_restores_the_layer(layer):
  serialized = json.loads(json.dumps(keras.layers.serialize(layer)))
  assert serialized["registered_name"] == "tfbet>" + type(layer).__name__
  restored = keras.layers.deserialize(serialized)
  assert type(restored) is type(layer)
  assert restored.get_config() == layer.get_config()
  x = _random((4, 2, 2, 6), seed=12)
  np.testing.assert_allclose(restored(x).numpy(), layer(x).numpy(), rtol=1e-6)
