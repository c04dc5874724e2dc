"""BitErrorQuantizer: fake quantization with bit errors injected in the integer domain.

Implements the tfmot ``Quantizer`` interface. For every quantized tensor it owns

* ``flip``, ``set``, ``clear``: uint8 error masks, ``v' = ((v ^ flip) | set) & ~clear``
  (docs/design.md §3); all zero means the clean quantized weights, bit for bit;
* ``errors``: true while masks are loaded (``tfbet.memory`` and the trainer set it with the masks).
  It is a variable read inside the graph, so a model traced once follows every later load; while
  it is false the masks are not read at all (clean training and evaluation cost no mask work);
* ``range``: [q_min, q_max] used when the range does not come from the tensor itself
  (a global scheme, or a loaded memory image);
* ``codes`` and ``frozen``: a memory image loaded by ``tfbet.memory.import_image``; while
  ``frozen`` is true the stored codes replace the quantized float weights, so an exported model is
  reproduced exactly.

The forward pass uses the dequantized (perturbed) weights; the gradient passes straight through to
the float weights (QAT, Fig. 5).
"""
import tensorflow as tf

from tfbet import ops
from tfbet import quantization
from tfbet.compat import keras
from tfbet.compat import tfmot

MASK_NAMES = ("flip", "set", "clear")


def perturbed_codes(codes, weights):
  """``codes`` with the loaded masks applied; while ``errors`` is false, ``codes`` untouched."""
  return tf.cond(
      weights["errors"],
      lambda: ops.apply_bit_errors(codes, weights["flip"], weights["set"], weights["clear"]),
      lambda: tf.identity(codes))


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
  """Quantizes one weight tensor with ``scheme`` and applies its bit error masks."""

  def __init__(self, scheme="rquant", name=None):
    if isinstance(scheme, dict):
      scheme = quantization.QuantizationScheme.from_dict(scheme)
    self.scheme = quantization.get_scheme(scheme)
    # Names this quantizer's variables; layers with several tensors of the same name (attention
    # projections, RNN cells) need distinct ones. None: the wrapper's name for the tensor.
    self.name = name

  def build(self, tensor_shape, name, layer):
    name = self.name or name
    variable = getattr(self, "variable", None)  # set by BitErrorQuantizeConfig
    if variable is not None:
      # The tfmot wrapper appends the float variable to its own list right after this; when the
      # wrapped layer was built earlier it is listed already. Listing it once, in quantizer
      # order, keeps the wrapper's variables the same for a new and a loaded model (.keras).
      layer._trainable_weights = [  # pylint: disable=protected-access
          w for w in layer._trainable_weights if w is not variable]  # pylint: disable=protected-access
    def add(suffix, shape, dtype, initializer):
      # Per-replica copies: every replica writes the same values (same seeds), no sync needed.
      return layer.add_weight(
          f"{name}_{suffix}", shape=shape, dtype=dtype, initializer=initializer,
          trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    weights = {mask: add(mask, tensor_shape, tf.uint8, keras.initializers.Zeros())
               for mask in MASK_NAMES}
    weights["errors"] = add("errors", (), tf.bool, keras.initializers.Zeros())
    weights["range"] = add("range", (2,), tf.float32, keras.initializers.Constant([-1.0, 1.0]))
    weights["codes"] = add("codes", tensor_shape, tf.uint8, keras.initializers.Zeros())
    weights["frozen"] = add("frozen", (), tf.bool, keras.initializers.Zeros())
    return weights

  def quantized_range(self, inputs, weights):
    """The (q_min, q_max) this tensor is quantized with right now."""
    if not self.scheme.per_tensor:
      return weights["range"][0], weights["range"][1]
    q_min, q_max = quantization.tensor_range(inputs, self.scheme)
    frozen = weights["frozen"]
    return (tf.where(frozen, weights["range"][0], q_min),
            tf.where(frozen, weights["range"][1], q_max))

  def clean_codes(self, inputs, weights):
    """The codes written to memory before any bit error."""
    q_min, q_max = self.quantized_range(inputs, weights)
    codes = tf.cond(weights["frozen"], lambda: tf.identity(weights["codes"]),
                    lambda: quantization.quantize(inputs, q_min, q_max, self.scheme))
    return codes, q_min, q_max

  # Plain TensorFlow ops without data-dependent Python control flow: autograph has nothing to
  # convert, and converting it took ~0.35 s per tensor whenever Keras built a model graph.
  @tf.autograph.experimental.do_not_convert
  def __call__(self, inputs, training, weights, **kwargs):
    codes, q_min, q_max = self.clean_codes(inputs, weights)
    codes = perturbed_codes(codes, weights)
    return quantization.straight_through(
        inputs, quantization.dequantize(codes, q_min, q_max, self.scheme))

  def get_config(self):
    return {"scheme": self.scheme.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def __eq__(self, other):
    return (isinstance(other, BitErrorQuantizer) and self.scheme == other.scheme
            and self.name == other.name)

  def __ne__(self, other):
    return not self.__eq__(other)
