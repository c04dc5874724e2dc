"""QuantizeConfigs that put every trainable parameter of a model into (faulty) memory.

Weights only: activations stay in floating point (the paper injects errors in stored weights).
Each parameter tensor (kernel, bias, normalization scale and offset, embedding table, the
kernels of RNN cells and attention projections, ...) gets its own ``BitErrorQuantizer``, so
per-tensor schemes quantize weights and biases separately (Sec. 4.1).

Coverage (never silent): a Keras layer reads its variables through attributes (``self.kernel``,
``self.cell.recurrent_kernel``, ``self._query_dense.kernel``). ``parameter_paths`` finds every
such attribute recursively through sub-layers; the quantize wrapper replaces each one with the
quantized, perturbed tensor before the layer runs. Nested Sequential/functional models are
inlined into one flat functional graph first (tensorflow-model-optimization cannot wrap a model
inside a model). A trainable variable that is not reachable this way is not in faulty memory:
``quantize_model`` then refuses, naming it, unless the caller leaves its layer out explicitly
(``exclude``). Non-trainable state (BatchNormalization moving statistics) stays in reliable
memory; ``memory.coverage`` reports the share of all parameters that is in faulty memory.
"""
import re

import tensorflow as tf
from tensorflow_model_optimization.python.core.quantization.keras import quantize_annotate
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layout_transform

from tf_keras.src.engine import functional

from tfbet import compat
from tfbet import quantization
from tfbet import quantizers
from tfbet.compat import keras
from tfbet.compat import tfmot

_tfmot_keras = tfmot.quantization.keras
# Bookkeeping lists of Keras layers that hold variables but are not read by call().
_SKIPPED_ATTRIBUTES = frozenset(("_trainable_weights", "_non_trainable_weights"))
_PATH_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def parameter_paths(layer):
  """{id(variable): (variable, [attribute paths])} of the variables ``layer`` holds.

  A path is a dotted attribute chain from ``layer`` to the attribute holding the variable, with
  list indices in brackets, e.g. ``"kernel"``, ``"cell.recurrent_kernel"``,
  ``"forward_layer.cell.kernel"``. Every attribute that holds a variable is listed, so an
  alias is replaced too. Public attributes are walked before private ones, so paths read well.
  """
  found = {}
  visited = set()

  def walk(obj, prefix):
    if id(obj) in visited:
      return
    visited.add(id(obj))
    items = sorted(vars(obj).items(), key=lambda kv: kv[0].startswith("_"))
    for name, value in items:
      if name in _SKIPPED_ATTRIBUTES:
        continue
      path = prefix + name
      if isinstance(value, tf.Variable):
        found.setdefault(id(value), (value, []))[1].append(path)
      elif isinstance(value, keras.layers.Layer):
        walk(value, path + ".")
      elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
          if isinstance(item, keras.layers.Layer):
            walk(item, f"{path}[{i}].")

  walk(layer, "")
  return found


def _resolve(layer, path):
  """(owner object, attribute name) of ``path`` in ``layer``."""
  *steps, attribute = path.split(".")
  owner = layer
  for step in steps:
    match = _PATH_STEP.match(step)
    if not match:
      raise ValueError(f"bad attribute path {path!r}")
    owner = getattr(owner, match.group(1))
    if match.group(2) is not None:
      owner = owner[int(match.group(2))]
  return owner, attribute


def _build_sublayers(layer):
  """Creates the variables of sub-layers that ``layer.build`` leaves to the first call.

  MultiHeadAttention (rebuilt from its config, e.g. when a saved model is loaded) builds its
  projections only when called; calling it once on zeros of the recorded shapes creates them.
  """
  if isinstance(layer, keras.layers.MultiHeadAttention) and layer._built_from_signature:  # pylint: disable=protected-access
    if not layer._query_dense.built:  # pylint: disable=protected-access
      def zeros(shape):
        return tf.zeros([1] + tf.TensorShape(shape).as_list()[1:])
      with tf.init_scope():
        layer(zeros(layer._query_shape), zeros(layer._value_shape),  # pylint: disable=protected-access
              key=zeros(layer._key_shape))  # pylint: disable=protected-access


def quantizable_attributes(layer, non_trainable=False):
  """([paths of one variable], ...) to quantize in ``layer``, and the uncovered variables.

  Returns (groups, uncovered): each group lists the attribute paths of one trainable variable
  (and of non-trainable ones if ``non_trainable``), in the order of ``layer.weights``;
  ``uncovered`` are trainable variables no attribute holds, which could not be quantized.
  """
  found = parameter_paths(layer)
  wanted = list(layer.trainable_weights)
  if non_trainable:
    wanted += list(layer.non_trainable_weights)
  groups, uncovered = [], []
  for variable in wanted:
    if id(variable) in found:
      groups.append(tuple(found[id(variable)][1]))
    elif variable.trainable or variable in layer.trainable_weights:
      uncovered.append(variable)
  return tuple(groups), uncovered


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizeConfig(_tfmot_keras.QuantizeConfig):
  """Quantizes the variables at ``weight_attrs`` of one layer with ``BitErrorQuantizer``s.

  ``weight_attrs`` has one entry per variable: an attribute path, or a list of the paths that
  all hold that variable (see ``parameter_paths``).
  """

  def __init__(self, weight_attrs, scheme="rquant"):
    if isinstance(scheme, dict):
      scheme = quantization.QuantizationScheme.from_dict(scheme)
    self.weight_attrs = tuple(
        (entry,) if isinstance(entry, str) else tuple(entry) for entry in weight_attrs)
    self.scheme = quantization.get_scheme(scheme)

  def get_weights_and_quantizers(self, layer):
    _build_sublayers(layer)
    result = []
    for paths in self.weight_attrs:
      owner, attribute = _resolve(layer, paths[0])
      if not isinstance(getattr(owner, attribute, None), tf.Variable):
        raise ValueError(f"layer {layer.name!r} has no variable at {paths[0]!r} after it was "
                         "built; it creates it later, which tfbet cannot quantize")
      name = paths[0].replace(".", "_").replace("[", "_").replace("]", "")
      quantizer = quantizers.BitErrorQuantizer(self.scheme, name)
      quantizer.variable = getattr(owner, attribute)
      result.append((quantizer.variable, quantizer))
    return result

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    if len(quantize_weights) != len(self.weight_attrs):
      raise ValueError(f"expected {len(self.weight_attrs)} quantized weights for layer "
                       f"{layer.name}, got {len(quantize_weights)}")
    for paths, weight in zip(self.weight_attrs, quantize_weights):
      for path in paths:
        owner, attribute = _resolve(layer, path)
        setattr(owner, attribute, weight)

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return []

  def get_config(self):
    return {"weight_attrs": [list(paths) for paths in self.weight_attrs],
            "scheme": self.scheme.to_dict()}

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
      "QuantizedModel": QuantizedModel,
  })
  return objects


def quantize_scope():
  """Context manager for loading/cloning quantized tfbet models."""
  return _tfmot_keras.quantize_scope(custom_objects())


def is_quantized(model):
  return any(isinstance(layer, _tfmot_keras.QuantizeWrapper) for layer in model.layers)


@keras.utils.register_keras_serializable(package="tfbet")
class QuantizedModel(functional.Functional):
  """The functional model ``quantize_model`` returns; only ``save`` differs.

  HDF5 (``.h5``) and ``.keras`` files round-trip a quantized model bit for bit (load them inside
  ``quantize_scope()``). A SavedModel directory works only without traced layer functions (the
  layers read quantized tensors, which a traced function cannot capture), so ``save`` writes it
  with ``save_traces=False`` and refuses ``save_traces=True``.
  """

  def save(self, filepath, overwrite=True, save_format=None, **kwargs):  # pylint: disable=arguments-differ
    path = str(filepath)
    saved_model = save_format == "tf" or (
        save_format is None and not path.endswith((".h5", ".hdf5", ".keras")))
    if saved_model:
      if kwargs.setdefault("save_traces", False):
        raise ValueError(
            f"cannot save quantized model {self.name!r} as a SavedModel with save_traces=True "
            "(its layers read quantized tensors that traced functions cannot capture); use "
            "save_traces=False (the default here), or a path ending in .h5 or .keras")
    return super().save(filepath, overwrite=overwrite, save_format=save_format, **kwargs)


def _is_graph_model(model):
  return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def _check_graph_model(model, what):
  if not isinstance(model, keras.Model):
    raise TypeError(f"{what} must be a tf_keras Model (Keras 2), got {type(model)!r}; Keras 3 "
                    "models cannot be quantized by tensorflow-model-optimization. "
                    + compat.KERAS_FIX)
  if not _is_graph_model(model):
    raise ValueError(
        f"{what} {model.name!r} is a subclassed Keras model; quantize_model needs Sequential or "
        "functional models (also when nested) because tensorflow-model-optimization rebuilds "
        "the layer graph with clone_model. Build the network functionally and put custom "
        "training logic on an outer model (tfbet.training.BitErrorTrainer).")
  if not model.built:
    raise ValueError(f"{what} {model.name!r} must be built (call it on an input or give an "
                     "input shape)")


def flatten_model(model):
  """A functional model computing the same as ``model`` with nested models inlined.

  Every layer of a nested Sequential/functional model becomes a layer of the returned model
  (a copy with the same weights; names get the nested model's name as a prefix when they would
  clash). A nested model used twice shares its inlined layers. ``model`` is not modified.
  """
  _check_graph_model(model, "model")
  if not any(isinstance(layer, keras.Model) for layer in model.layers):
    return model
  copies = {}  # id(original layer) -> copy
  used_names = set()

  def copy_of(layer, prefix):
    if id(layer) not in copies:
      name = layer.name
      if name in used_names:
        name = prefix + name
      if name in used_names:
        raise ValueError(f"cannot inline nested models: two layers would be named {name!r}")
      used_names.add(name)
      config = layer.get_config()
      config["name"] = name
      copies[id(layer)] = (layer.__class__.from_config(config), layer)
    return copies[id(layer)][0]

  def run(graph, inputs, prefix):
    """Calls the layers of ``graph`` on ``inputs`` (a list); returns its outputs (a list)."""
    _check_graph_model(graph, "nested model")
    if not getattr(graph, "_is_graph_network", False):
      raise ValueError(f"nested Sequential model {graph.name!r} has no input shape; build it "
                       "with an Input layer")
    tensors = {id(k): v for k, v in zip(graph.inputs, inputs)}
    for depth in sorted(graph._nodes_by_depth, reverse=True):  # pylint: disable=protected-access
      for node in graph._nodes_by_depth[depth]:  # pylint: disable=protected-access
        if node.is_input:
          continue
        if any(id(t) not in tensors for t in tf.nest.flatten(node.keras_inputs)):
          continue  # a node of another model that shares this layer
        args, kwargs = tf.nest.map_structure(
            lambda t: tensors[id(t)] if id(t) in tensors else t,
            (node.call_args, node.call_kwargs))
        if isinstance(node.layer, keras.Model):
          outputs = run(node.layer, tf.nest.flatten(args[0]),
                        prefix + node.layer.name + "_")
          outputs = tf.nest.pack_sequence_as(node.outputs, outputs)
        else:
          outputs = copy_of(node.layer, prefix)(*args, **kwargs)
        for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)):
          tensors[id(old)] = new
    return [tensors[id(t)] for t in graph.outputs]

  for layer in model.layers:  # outer layers first: their names stay as they are
    if not isinstance(layer, keras.Model):
      copy_of(layer, "")
  inputs = [keras.Input(type_spec=t.type_spec, name=t.name.split(":")[0]) for t in model.inputs]
  outputs = run(model, inputs, "")
  flat = keras.Model(inputs, tf.nest.pack_sequence_as(model._nested_outputs, outputs),  # pylint: disable=protected-access
                     name=model.name)
  for copy, original in copies.values():
    copy.set_weights(original.get_weights())
  return flat


def _excluded(layer, exclude):
  if exclude is None:
    return False
  if callable(exclude):
    return bool(exclude(layer))
  return layer.name in exclude


def quantize_model(model, scheme="rquant", exclude=None):
  """Returns a copy of ``model`` whose trainable parameters live in quantized, faulty memory.

  ``model`` must be a Sequential or functional Keras model (nested ones are inlined, see
  ``flatten_model``): tfmot rebuilds it layer by layer with ``clone_model``, which subclassed
  models do not support. ``scheme`` is a preset name of ``tfbet.quantization.PRESETS`` or a
  ``QuantizationScheme``.

  Every trainable variable a layer reads is quantized (see the module docstring); if one cannot
  be, this raises ``ValueError`` listing them. ``exclude`` leaves layers in reliable float
  memory on purpose: a collection of layer names, or a predicate ``layer -> bool``.
  ``tfbet.memory.coverage`` states the share of parameters in faulty memory.
  """
  scheme = quantization.get_scheme(scheme)
  _check_graph_model(model, "model")
  if is_quantized(model):
    raise ValueError(f"model {model.name!r} is already quantized")
  if exclude is not None and not callable(exclude):
    if isinstance(exclude, str):
      exclude = [exclude]
    exclude = frozenset(exclude)
  flat = flatten_model(model)
  if exclude is not None and not callable(exclude):
    unknown = exclude - {layer.name for layer in flat.layers}
    if unknown:
      raise ValueError(f"exclude names layers that model {model.name!r} does not have: "
                       f"{sorted(unknown)}; its layers are {[l.name for l in flat.layers]}")

  uncovered = []

  def annotate(layer):
    clone = layer.__class__.from_config(layer.get_config())
    if _excluded(layer, exclude):
      return clone
    attrs, missing = quantizable_attributes(layer)
    uncovered.extend(f"{layer.name}: {v.name} {tuple(v.shape)}" for v in missing)
    if not attrs:
      return clone
    return _tfmot_keras.quantize_annotate_layer(clone, BitErrorQuantizeConfig(attrs, scheme))

  with quantize_scope():
    annotated = keras.models.clone_model(flat, clone_function=annotate)
    if uncovered:
      raise ValueError(
          f"quantize_model cannot put these trainable variables of model {model.name!r} into "
          "faulty memory (their layers do not read them through an attribute): "
          + "; ".join(uncovered) + ". Leave their layers out explicitly with "
          "quantize_model(..., exclude=[layer names] or a predicate).")
    annotated.set_weights(flat.get_weights())
    if not any(isinstance(l, quantize_annotate.QuantizeAnnotate) for l in annotated.layers):
      raise ValueError(f"model {model.name!r} has no layer with trainable parameters to quantize")
    quantized = _tfmot_keras.quantize_apply(annotated, scheme=BitErrorQuantizeScheme())
  quantized._name = model.name  # pylint: disable=protected-access
  quantized.__class__ = QuantizedModel  # the same graph and state; see QuantizedModel.save
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
