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

The uint8 tensors are ``ByteVariable``s: one byte per weight, held four to an int32 variable,
because distribution strategies broadcast and all-reduce variables with collective ops that have
no uint8 kernel (docs/design.md, "Bit error state under distribution strategies").

The forward pass uses the dequantized (perturbed) weights; the gradient passes straight through to
the float weights (QAT, Fig. 5).
"""
import numpy as np
import tensorflow as tf

from tfbet import ops
from tfbet import quantization
from tfbet.compat import keras
from tfbet.compat import tfmot

MASK_NAMES = ("flip", "set", "clear")
BYTE_NAMES = MASK_NAMES + ("codes",)
_BYTES_PER_WORD = 4  # uint8 bytes per int32 word of a ByteVariable


class ByteVariable:
  """A uint8 tensor of ``shape`` stored in an int32 ``variable`` of ceil(size / 4) words.

  Reads and writes are bitcasts (plus at most 3 bytes of padding per tensor), so memory stays one
  byte per weight, while the variable itself has a dtype that collective ops (the initial-value
  broadcast of ``MultiWorkerMirroredStrategy``) can carry. Converts to a uint8 tensor wherever a
  tensor is expected; ``assign`` takes uint8 values (or another ByteVariable of the same shape).
  """

  dtype = tf.uint8

  def __init__(self, variable, shape):
    self.variable = variable
    self.shape = tuple(int(d) for d in shape)
    self.size = int(np.prod(self.shape, dtype=np.int64))
    if variable.dtype != tf.int32 or tuple(variable.shape) != self.words_shape(self.shape):
      raise ValueError(f"ByteVariable {variable.name}: expected an int32 variable of shape "
                       f"{self.words_shape(self.shape)}, got {variable.dtype.name} "
                       f"{tuple(variable.shape)}")

  @staticmethod
  def words_shape(shape):
    """Shape of the int32 variable holding a uint8 tensor of ``shape``."""
    size = int(np.prod(tuple(shape), dtype=np.int64))
    return (-(-size // _BYTES_PER_WORD),)

  @staticmethod
  def pack(value, shape):
    """uint8 ``value`` of ``shape`` -> the int32 words that hold it."""
    flat = tf.reshape(tf.convert_to_tensor(value, tf.uint8), [-1])
    size = int(np.prod(tuple(shape), dtype=np.int64))
    padding = ByteVariable.words_shape(shape)[0] * _BYTES_PER_WORD - size
    if padding:
      flat = tf.pad(flat, [[0, padding]])
    return tf.bitcast(tf.reshape(flat, [-1, _BYTES_PER_WORD]), tf.int32)

  def value(self):
    """The uint8 tensor (in a replica context: this replica's copy)."""
    flat = tf.reshape(tf.bitcast(self.variable.read_value(), tf.uint8), [-1])
    if flat.shape[0] != self.size:
      flat = flat[:self.size]
    return tf.reshape(flat, self.shape)

  def assign(self, value):
    if isinstance(value, ByteVariable):
      if value.shape != self.shape:
        raise ValueError(f"cannot assign bytes of shape {value.shape} to {self.shape}")
      return self.variable.assign(value.variable.read_value())
    return self.variable.assign(self.pack(value, self.shape))

  def numpy(self):
    return self.value().numpy()

  def __array__(self, dtype=None, copy=None):
    del copy
    return np.asarray(self.numpy(), dtype=dtype)

  @property
  def name(self):
    return self.variable.name

  def __repr__(self):
    return f"<ByteVariable {self.variable.name} shape={self.shape} (int32 {self.variable.shape})>"


tf.register_tensor_conversion_function(
    ByteVariable, lambda value, dtype=None, name=None, as_ref=False: value.value())


def perturbed_codes(codes, weights):
  """``codes`` with the loaded masks applied; while ``errors`` is false, ``codes`` untouched."""
  return tf.cond(
      weights["errors"],
      lambda: ops.apply_bit_errors(codes, *(weights[name].value() for name in MASK_NAMES)),
      lambda: tf.identity(codes))


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
  """Quantizes one weight tensor with ``scheme`` and applies its bit error masks."""

  def __init__(self, scheme="rquant", name=None):
    self.scheme = quantization.as_scheme(scheme)
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
    weights = {
        key: ByteVariable(add(key, ByteVariable.words_shape(tensor_shape), tf.int32,
                              keras.initializers.Zeros()), tensor_shape)
        for key in BYTE_NAMES}
    weights["errors"] = add("errors", (), tf.bool, keras.initializers.Zeros())
    weights["range"] = add("range", (2,), tf.float32, keras.initializers.Constant([-1.0, 1.0]))
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
    codes = tf.cond(weights["frozen"], lambda: tf.identity(weights["codes"].value()),
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
