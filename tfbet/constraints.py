"""Weight clipping (Sec. 4.2): keeps every constrained weight inside [-w_max, w_max].

Clipping forces the network to spread large logits over many weights, which makes it robust to
bit errors in the quantized weights; it also bounds every quantization range by w_max. Keras
applies a variable's constraint after each optimizer update, which is line 6 of Alg. 1 moved to
the end of the previous step (weights are not clipped at initialization).
"""
import tensorflow as tf

from tfbet import checks
from tfbet.compat import keras


@keras.utils.register_keras_serializable(package="tfbet")
class WeightClip(keras.constraints.Constraint):
  """Clips weights element-wise to [-w_max, w_max] (CLIPPING_{w_max} in the paper)."""

  def __init__(self, w_max):
    self.w_max = checks.positive(w_max, "w_max")

  def __call__(self, w):
    w_max = tf.cast(self.w_max, w.dtype)
    return tf.clip_by_value(w, -w_max, w_max)

  def get_config(self):
    return {"w_max": self.w_max}

  def __eq__(self, other):
    return isinstance(other, WeightClip) and self.w_max == other.w_max

  def __ne__(self, other):
    return not self.__eq__(other)

  def __hash__(self):
    return hash((WeightClip, self.w_max))

  def __repr__(self):
    return f"WeightClip(w_max={self.w_max!r})"
