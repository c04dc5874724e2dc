"""Coverage measured on one traced call: a quantized model computes with its faulty weights only.

``quantize_model`` puts every weight a layer reads through an attribute into faulty memory; a
layer could still read the float variable some other way (a closure, ``self.weights[i]``) and
compute with weights bit errors never reach. ``verify_reads`` traces one inference call, with
tfbet's quantize wrappers recording the dequantized tensors they hand their layers, and follows
the data flow back from the outputs (docs/design.md §3, "Coverage").
"""
import tensorflow as tf

from tfbet.compat import tfmot

# tfbet's BitErrorQuantizeWrapper is one: while a list is set as its ``_read_probe``, it appends
# (variable, dequantized tensor) for each read, and records why its layer failed, if it did.
_QUANTIZE_WRAPPER = tfmot.quantization.keras.QuantizeWrapper

_READ_FIX = ("read each weight in call() through the attribute that build() assigned it to "
             "(self.kernel, self.cell.kernel, ...), not through a closure, self.weights[i], "
             "self.trainable_weights[i] or variable.read_value(); or leave the layer out with "
             "quantize_model(..., exclude=[its name])")


def verify_reads(model):
  """Checks, on one traced inference call, that ``model`` reads only faulty weights.

  Coverage is measured, not assumed: the quantized value of every variable in faulty memory
  must reach an output, and no output may depend on such a variable any other way (a layer
  reading its float weight through a closure would compute with weights bit errors never hit).
  The check follows the data flow of the traced graph backwards from the outputs, stopping at
  the dequantized tensors tfbet hands the layers. Raises ``ValueError`` naming the layer.
  """
  wrappers = [l for l in model.layers if isinstance(l, _QUANTIZE_WRAPPER)]
  for wrapper in wrappers:
    wrapper._read_probe = []  # pylint: disable=protected-access
  specs = tf.nest.map_structure(lambda t: t.type_spec, model._nested_inputs)  # pylint: disable=protected-access
  try:
    graph = tf.function(lambda inputs: model(inputs, training=False)).get_concrete_function(
        specs).graph
  except Exception as error:  # pylint: disable=broad-except
    failed = [(w.layer.name, w.__dict__["_read_probe_failure"]) for w in wrappers
              if "_read_probe_failure" in w.__dict__]
    where = (f"layer {failed[0][0]!r} fails when it reads its quantized weights "
             f"({failed[0][1]})" if failed else f"it fails ({type(error).__name__}: {error})")
    raise ValueError(f"cannot quantize model {model.name!r}: {where}. To quantize it, "
                     f"{_READ_FIX}.") from error
  finally:
    recorded = {wrapper.layer.name: wrapper.__dict__.pop("_read_probe") for wrapper in wrappers}
    for wrapper in wrappers:
      wrapper.__dict__.pop("_read_probe_failure", None)

  dequantized = {}  # graph tensor name -> (layer name, variable)
  for layer_name, reads in recorded.items():
    for variable, value in reads:
      dequantized[value.name] = (layer_name, variable)
  faulty = [(wrapper.layer.name, variable) for wrapper in wrappers
            for variable, _, _ in wrapper._weight_vars]  # pylint: disable=protected-access
  owner_of_handle = {id(handle): (layer_name, variable) for layer_name, variable in faulty
                     for handle in _handles(variable)}
  handles = {}  # graph placeholder name -> (layer name, variable)
  for external, internal in graph.captures:
    if id(external) in owner_of_handle:
      handles[internal.name] = owner_of_handle[id(external)]

  reached, bypassed = set(), []
  stack = [t.op for t in tf.nest.flatten(graph.outputs)]
  seen = set()
  while stack:
    op = stack.pop()
    if op.name in seen:
      continue
    seen.add(op.name)
    for tensor in op.inputs:
      if tensor.name in dequantized:
        reached.add(id(dequantized[tensor.name][1]))
        continue
      if tensor.name in handles:
        bypassed.append(handles[tensor.name])
      stack.append(tensor.op)
  if bypassed:
    details = "; ".join(sorted({f"layer {layer!r} reads {v.name}" for layer, v in bypassed}))
    raise ValueError(f"model {model.name!r} reads weights around faulty memory ({details}): "
                     f"bit errors would never reach them. To quantize it, {_READ_FIX}.")
  unread = [(layer_name, v) for layer_name, v in faulty if id(v) not in reached]
  if unread:
    details = "; ".join(f"layer {layer!r}: {v.name}" for layer, v in unread)
    raise ValueError(f"model {model.name!r} never uses the faulty value of these weights in "
                     f"inference ({details}), so the share of the model in faulty memory would "
                     f"be overstated. To quantize it, {_READ_FIX}.")


def _handles(variable):
  """The resource handles a graph may capture for ``variable`` (each copy of a distributed one,
  whose own ``handle`` exists only inside a replica context)."""
  copies = getattr(variable, "values", None)
  return [v.handle for v in copies] if copies is not None else [variable.handle]
