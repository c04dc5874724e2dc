"""Normalization layers whose scale is reparameterized as 1 + alpha' (App. E).

Weight clipping constrains every quantized parameter to [-w_max, w_max]. A plain normalization
scale alpha (initialized to 1) clipped to, e.g., 0.1 can no longer represent the identity. Here
the trainable weight holds alpha' (initialized to 0) and the layer scales by alpha = 1 + alpha',
so clipping alpha' keeps the identity reachable. The weights are named ``gamma`` (holding alpha')
and ``beta`` (the offset) like Keras' own layers, so quantize configs find them by attribute; the
layers read ``self.gamma`` / ``self.beta`` inside ``call`` so a quantize wrapper can substitute
quantized tensors for them.

Both layers work on channels-last tensors (every tfbet model is channels-last) of rank >= 2.
"""

import tensorflow as tf

from tfbet import checks
from tfbet.compat import keras


def _channels_of(layer_name, input_shape):
  """Returns the (static) channel count of a channels-last input shape."""
  input_shape = tf.TensorShape(input_shape)
  if input_shape.rank is None or input_shape.rank < 2:
    raise ValueError(f"Layer {layer_name!r} needs inputs of rank >= 2 (batch, ..., channels), "
                     f"got shape {input_shape}.")
  channels = input_shape[-1]
  if channels is None:
    raise ValueError(f"Layer {layer_name!r} needs a known channel count (last axis), "
                     f"got shape {input_shape}.")
  return int(channels)


class _ReparameterizedNormalization(keras.layers.Layer):
  """Shared weights and config of the reparameterized scale 1 + gamma and offset beta."""

  def __init__(self,
               epsilon=1e-5,
               gamma_initializer="zeros",
               beta_initializer="zeros",
               gamma_regularizer=None,
               beta_regularizer=None,
               gamma_constraint=None,
               beta_constraint=None,
               **kwargs):
    super().__init__(**kwargs)
    self.supports_masking = True
    self.epsilon = checks.positive(epsilon, "epsilon")
    self.gamma_initializer = keras.initializers.get(gamma_initializer)
    self.beta_initializer = keras.initializers.get(beta_initializer)
    self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)
    self.beta_regularizer = keras.regularizers.get(beta_regularizer)
    self.gamma_constraint = keras.constraints.get(gamma_constraint)
    self.beta_constraint = keras.constraints.get(beta_constraint)

  def _build_scale_and_offset(self, channels):
    # gamma holds alpha'; the applied scale is 1 + gamma.
    self.gamma = self.add_weight(
        name="gamma", shape=(channels,), initializer=self.gamma_initializer,
        regularizer=self.gamma_regularizer, constraint=self.gamma_constraint, trainable=True)
    self.beta = self.add_weight(
        name="beta", shape=(channels,), initializer=self.beta_initializer,
        regularizer=self.beta_regularizer, constraint=self.beta_constraint, trainable=True)

  def _scale_and_offset(self, dtype):
    scale = 1.0 + tf.cast(self.gamma, dtype)
    offset = tf.cast(self.beta, dtype)
    return scale, offset

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update({
        "epsilon": self.epsilon,
        "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
        "beta_initializer": keras.initializers.serialize(self.beta_initializer),
        "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
        "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
        "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        "beta_constraint": keras.constraints.serialize(self.beta_constraint),
    })
    return config


@keras.utils.register_keras_serializable(package="tfbet")
class ReparameterizedGroupNormalization(_ReparameterizedNormalization):
  """Group normalization (Wu & He, 2018) with scale 1 + gamma.

  Channels are split into ``groups`` consecutive groups; each example is normalized by the mean
  and variance over its spatial positions and the channels of a group. No running statistics:
  the output does not depend on the batch, so training and inference behave the same.
  """

  def __init__(self, groups=32, epsilon=1e-5, **kwargs):
    super().__init__(epsilon=epsilon, **kwargs)
    self.groups = checks.count(groups, "groups", minimum=1)

  def build(self, input_shape):
    channels = _channels_of(self.name, input_shape)
    if channels % self.groups:
      raise ValueError(
          f"GroupNormalization {self.name!r}: the channel count ({channels}) must be divisible "
          f"by groups ({self.groups}).")
    self._build_scale_and_offset(channels)
    self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: channels})
    super().build(input_shape)

  def call(self, inputs):
    inputs = tf.convert_to_tensor(inputs)
    rank = inputs.shape.rank
    channels = inputs.shape[-1]
    shape = tf.shape(inputs)
    grouped_shape = tf.concat([shape[:-1], [self.groups, channels // self.groups]], axis=0)
    grouped = tf.reshape(inputs, grouped_shape)
    # Statistics over all spatial axes and the channels within a group.
    axes = list(range(1, rank - 1)) + [rank]
    mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)
    normalized = (grouped - mean) * tf.math.rsqrt(variance + self.epsilon)
    normalized = tf.reshape(normalized, shape)
    scale, offset = self._scale_and_offset(inputs.dtype)
    return normalized * scale + offset

  def get_config(self):
    config = super().get_config()
    config["groups"] = self.groups
    return config


@keras.utils.register_keras_serializable(package="tfbet")
class ReparameterizedBatchNormalization(_ReparameterizedNormalization):
  """Batch normalization (Ioffe & Szegedy, 2015) with scale 1 + gamma, for Tab. 10.

  In training, normalizes by the batch statistics over all axes but the last and updates the
  moving averages ``moving_average = momentum * moving_average + (1 - momentum) * batch_stat``
  (biased batch variance). At inference, uses the moving averages, or the batch statistics when
  ``batch_statistics_at_inference`` is set (Tab. 10, bottom: test-time batch statistics).
  The defaults (momentum 0.9, epsilon 1e-5) are PyTorch's, which the paper used.
  """

  def __init__(self,
               momentum=0.9,
               epsilon=1e-5,
               moving_mean_initializer="zeros",
               moving_variance_initializer="ones",
               batch_statistics_at_inference=False,
               **kwargs):
    super().__init__(epsilon=epsilon, **kwargs)
    self.momentum = checks.probability(momentum, "momentum")
    self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
    self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
    self.batch_statistics_at_inference = bool(batch_statistics_at_inference)

  def build(self, input_shape):
    channels = _channels_of(self.name, input_shape)
    self._build_scale_and_offset(channels)
    # ON_READ + MEAN: each replica keeps its own running statistics, read as their mean.
    self.moving_mean = self.add_weight(
        name="moving_mean", shape=(channels,), initializer=self.moving_mean_initializer,
        trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.MEAN)
    self.moving_variance = self.add_weight(
        name="moving_variance", shape=(channels,),
        initializer=self.moving_variance_initializer, trainable=False,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.MEAN)
    self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: channels})
    super().build(input_shape)

  def _normalize(self, inputs, mean, variance):
    scale, offset = self._scale_and_offset(inputs.dtype)
    return tf.nn.batch_normalization(
        inputs, tf.cast(mean, inputs.dtype), tf.cast(variance, inputs.dtype), offset, scale,
        self.epsilon)

  def _batch_moments(self, inputs):
    axes = list(range(inputs.shape.rank - 1))
    return tf.nn.moments(inputs, axes=axes)

  def _training_output(self, inputs):
    mean, variance = self._batch_moments(inputs)
    decay = 1.0 - self.momentum
    self.moving_mean.assign_sub(
        (self.moving_mean - tf.cast(mean, self.moving_mean.dtype)) * decay)
    self.moving_variance.assign_sub(
        (self.moving_variance - tf.cast(variance, self.moving_variance.dtype)) * decay)
    return self._normalize(inputs, mean, variance)

  def _inference_output(self, inputs):
    if self.batch_statistics_at_inference:
      mean, variance = self._batch_moments(inputs)
    else:
      mean, variance = self.moving_mean, self.moving_variance
    return self._normalize(inputs, mean, variance)

  def call(self, inputs, training=None):
    inputs = tf.convert_to_tensor(inputs)
    if training is None:
      training = keras.backend.learning_phase()
    if isinstance(training, (bool, int)):
      if training:
        return self._training_output(inputs)
      return self._inference_output(inputs)
    return tf.cond(tf.cast(training, tf.bool),
                   lambda: self._training_output(inputs),
                   lambda: self._inference_output(inputs))

  def get_config(self):
    config = super().get_config()
    config.update({
        "momentum": self.momentum,
        "moving_mean_initializer": keras.initializers.serialize(self.moving_mean_initializer),
        "moving_variance_initializer":
            keras.initializers.serialize(self.moving_variance_initializer),
        "batch_statistics_at_inference": self.batch_statistics_at_inference,
    })
    return config


# Short names for users. The classes carry the long names because tfmot deserializes wrapped
# layers by class name alone, where "BatchNormalization" would mean the Keras layer.
GroupNormalization = ReparameterizedGroupNormalization
BatchNormalization = ReparameterizedBatchNormalization
