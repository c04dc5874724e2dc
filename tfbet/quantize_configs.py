"""QuantizeConfigs that put every trainable parameter of a model into (faulty) memory.

Weights only: activations stay in floating point (the paper injects errors in stored weights).
Each parameter tensor (kernel, bias, normalization scale and offset) gets its own
``BitErrorQuantizer``, so per-tensor schemes quantize weights and biases separately (Sec. 4.1).
"""
from tensorflow_model_optimization.python.core.quantization.keras import quantize_annotate
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layout_transform

from tfbet import quantization
from tfbet import quantizers
from tfbet.compat import keras
from tfbet.compat import tfmot

# Layer attributes that hold trainable parameters read by the layer's call().
QUANTIZABLE_ATTRIBUTES = ("kernel", "depthwise_kernel", "bias", "gamma", "beta")
_tfmot_keras = tfmot.quantization.keras


def quantizable_attributes(layer):
  """Names of ``layer``'s trainable parameter attributes that get quantized."""
  trainable = {id(w) for w in layer.trainable_weights}
  return tuple(name for name in QUANTIZABLE_ATTRIBUTES
               if id(getattr(layer, name, None)) in trainable)


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizeConfig(_tfmot_keras.QuantizeConfig):
  """Quantizes the named weight attributes of one layer with ``BitErrorQuantizer``s."""

  def __init__(self, weight_attrs, scheme="rquant"):
    if isinstance(scheme, dict):
      scheme = quantization.QuantizationScheme.from_dict(scheme)
    self.weight_attrs = tuple(weight_attrs)
    self.scheme = quantization.get_scheme(scheme)

  def get_weights_and_quantizers(self, layer):
    return [(getattr(layer, name), quantizers.BitErrorQuantizer(self.scheme))
            for name in self.weight_attrs]

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    if len(quantize_weights) != len(self.weight_attrs):
      raise ValueError(f"expected {len(self.weight_attrs)} quantized weights for layer "
                       f"{layer.name}, got {len(quantize_weights)}")
    for name, weight in zip(self.weight_attrs, quantize_weights):
      setattr(layer, name, weight)

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return []

  def get_config(self):
    return {"weight_attrs": list(self.weight_attrs), "scheme": self.scheme.to_dict()}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  def __eq__(self, other):
    return (isinstance(other, BitErrorQuantizeConfig)
            and self.weight_attrs == other.weight_attrs and self.scheme == other.scheme)

  def __ne__(self, other):
    return not self.__eq__(other)


class _NoLayoutTransform(quantize_layout_transform.QuantizeLayoutTransform):
  """Keeps the model graph as it is (no Conv+BN folding, no activation quantizers)."""

  def apply(self, model, layer_quantize_map):
    return model, layer_quantize_map


class _EmptyRegistry:
  """Quantizes nothing that was not annotated explicitly."""

  def supports(self, layer):
    del layer
    return False

  def get_quantize_config(self, layer):
    del layer
    return None


class BitErrorQuantizeScheme(_tfmot_keras.QuantizeScheme):
  """tfmot scheme: only our annotated layers are wrapped, nothing else changes."""

  def get_layout_transformer(self):
    return _NoLayoutTransform()

  def get_quantize_registry(self):
    return _EmptyRegistry()


def custom_objects():
  """Everything Keras needs to deserialize a tfbet model."""
  objects = dict(keras.utils.get_custom_objects())
  # tfmot deserializes wrapped layers by plain class name: add ours without the package prefix.
  objects.update({name.split(">", 1)[1]: obj for name, obj in list(objects.items())
                  if name.startswith("tfbet>")})
  objects.update({
      "BitErrorQuantizer": quantizers.BitErrorQuantizer,
      "BitErrorQuantizeConfig": BitErrorQuantizeConfig,
  })
  return objects


def quantize_scope():
  """Context manager for loading/cloning quantized tfbet models."""
  return _tfmot_keras.quantize_scope(custom_objects())


def is_quantized(model):
  return any(isinstance(layer, _tfmot_keras.QuantizeWrapper) for layer in model.layers)


def quantize_model(model, scheme="rquant"):
  """Returns a copy of ``model`` whose trainable parameters live in quantized, faulty memory.

  ``model`` must be a Sequential or functional Keras model: tfmot rebuilds it layer by layer with
  ``clone_model``, which subclassed models do not support. ``scheme`` is a preset name of
  ``tfbet.quantization.PRESETS`` or a ``QuantizationScheme``.
  """
  scheme = quantization.get_scheme(scheme)
  if not isinstance(model, keras.Model):
    raise TypeError(f"model must be a tf_keras Model (from tfbet.compat), got {type(model)!r}; "
                    "Keras 3 models cannot be quantized by tensorflow-model-optimization.")
  if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
    raise ValueError(
        f"model {model.name!r} is a subclassed Keras model; quantize_model needs a Sequential or "
        "functional model because tensorflow-model-optimization rebuilds the layer graph with "
        "clone_model. Build the network functionally and put custom training logic on an outer "
        "model (tfbet.training.BitErrorTrainer).")
  if is_quantized(model):
    raise ValueError(f"model {model.name!r} is already quantized")
  if not model.built:
    raise ValueError("model must be built (call it on an input or give an input shape)")

  def annotate(layer):
    clone = layer.__class__.from_config(layer.get_config())
    attrs = quantizable_attributes(layer)
    if not attrs:
      return clone
    return _tfmot_keras.quantize_annotate_layer(clone, BitErrorQuantizeConfig(attrs, scheme))

  with quantize_scope():
    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    if not any(isinstance(l, quantize_annotate.QuantizeAnnotate) for l in annotated.layers):
      raise ValueError(f"model {model.name!r} has no layer with trainable parameters to quantize")
    quantized = _tfmot_keras.quantize_apply(annotated, scheme=BitErrorQuantizeScheme())
  quantized._name = model.name  # pylint: disable=protected-access
  return quantized


def quantized_variables(model):
  """[(float variable, quantizer, quantizer variables dict)] in the order of ``model.weights``.

  This order is the linear memory layout of docs/design.md §3.
  """
  by_id = {}
  for layer in model.layers:
    if isinstance(layer, _tfmot_keras.QuantizeWrapper):
      for weight, quantizer, qvars in layer._weight_vars:  # pylint: disable=protected-access
        by_id[id(weight)] = (weight, quantizer, qvars)
  ordered = [by_id.pop(id(w)) for w in model.weights if id(w) in by_id]
  if by_id:
    raise RuntimeError("quantized variables missing from model.weights: "
                       + ", ".join(v[0].name for v in by_id.values()))
  return ordered
