"""Nested Sequential/functional models inlined into one flat functional graph.

tensorflow-model-optimization wraps layers, never a model inside a model, and rebuilds the
layer graph with ``clone_model``: ``quantize_model`` therefore takes a graph model (Sequential or
functional, nested ones too) and flattens it first (docs/design.md §6, "Nested models").
"""
import tensorflow as tf

from tfbet import compat
from tfbet.compat import keras


def _is_graph_model(model):
  return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def check_graph_model(model, what):
  """Refuses what ``clone_model`` cannot rebuild: a Keras 3, subclassed or unbuilt model."""
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
  check_graph_model(model, "model")
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
    check_graph_model(graph, "nested model")
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
