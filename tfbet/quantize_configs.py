"""QuantizeConfigs that put every trainable parameter of a model into (faulty) memory.

Weights only: activations stay in floating point (the paper injects errors in stored weights).
Each parameter tensor (kernel, bias, normalization scale and offset, embedding table, the
kernels of RNN cells and attention projections, ...) gets its own ``BitErrorQuantizer``, so
per-tensor schemes quantize weights and biases separately (Sec. 4.1).

Coverage (never silent): a Keras layer reads its variables through attributes (``self.kernel``,
``self.cell.recurrent_kernel``, ``self._query_dense.kernel``). ``parameter_paths`` finds every
such attribute recursively through sub-layers; the quantize wrapper replaces each one with the
quantized, perturbed tensor before the layer runs. Nested Sequential/functional models are
inlined into one flat functional graph first (``flat_models``; tensorflow-model-optimization
cannot wrap a model inside a model). A trainable variable that is not reachable this way is not
in faulty memory: ``quantize_model`` then refuses, naming it, unless the caller leaves its layer
out explicitly (``exclude``). Frozen layers (``trainable=False``) are no exception: their weights
are stored like any other. Coverage is then measured on one traced call (``traced_reads``): each
faulty weight must reach the output, and only through the tensor tfbet hands its layer.

Non-trainable state (BatchNormalization's moving statistics, any float variable a layer keeps
out of training) stays in reliable memory by default, as in the paper. With ``faulty_state=True``
it is quantized per tensor into the same faulty memory, with its own masks: the layer reads the
perturbed state at inference, while in training mode it reads and updates the reliable variable
(BatchNormalization uses batch statistics there). ``memory.coverage`` reports the share of all
parameters, state included, that is in faulty memory.
"""
import re

import tensorflow as tf

from tfbet import compat
from tfbet import flat_models
from tfbet import quantization
from tfbet import quantizers
from tfbet import traced_reads
from tfbet.compat import keras
from tfbet.compat import tfmot

_tfmot_keras = tfmot.quantization.keras
# Moved to their own modules (docs/design.md §2); still importable from here.
flatten_model = flat_models.flatten_model
verify_reads = traced_reads.verify_reads
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


def is_state(variable):
  """True for non-trainable float state a layer reads (BatchNormalization moving statistics)."""
  return not variable.trainable and variable.dtype.is_floating


def stored_parameters(layer):
  """The variables of ``layer`` that training would learn, whether or not the layer is frozen.

  A frozen layer (``layer.trainable = False``, the usual fine-tuning set-up) lists no trainable
  weights, but its variables keep their own ``trainable`` flag: freezing is a training choice,
  the weights are stored like any other and so belong in faulty memory (docs/design.md §3).
  """
  return [v for v in layer.weights if v.trainable]


def quantizable_attributes(layer, faulty_state=False):
  """([paths of one variable], ...) to quantize in ``layer``, and the uncovered variables.

  Returns (groups, uncovered): each group lists the attribute paths of one trainable variable,
  frozen or not (``stored_parameters``), and, with ``faulty_state``, of one state variable (see
  ``is_state``), in the order of ``layer.weights``; ``uncovered`` are such variables no
  attribute holds, which could not be quantized.
  """
  found = parameter_paths(layer)
  wanted = stored_parameters(layer)
  if faulty_state:
    wanted += [v for v in layer.weights if is_state(v)]
  groups, uncovered = [], []
  for variable in wanted:
    if id(variable) in found:
      groups.append(tuple(found[id(variable)][1]))
    else:
      uncovered.append(variable)
  return tuple(groups), uncovered


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizeConfig(_tfmot_keras.QuantizeConfig):
  """Quantizes the variables at ``weight_attrs`` of one layer with ``BitErrorQuantizer``s.

  ``weight_attrs`` has one entry per variable: an attribute path, or a list of the paths that
  all hold that variable (see ``parameter_paths``).
  """

  def __init__(self, weight_attrs, scheme="rquant"):
    self.weight_attrs = tuple(
        (entry,) if isinstance(entry, str) else tuple(entry) for entry in weight_attrs)
    self.scheme = quantization.as_scheme(scheme)

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


@keras.utils.register_keras_serializable(package="tfbet")
class BitErrorQuantizeWrapper(_tfmot_keras.QuantizeWrapperV2):
  """tfmot's wrapper that replaces a layer's variables with their quantized, perturbed values.

  Differs from ``QuantizeWrapperV2`` in these ways:

  * a frozen layer (``trainable=False``) lists its quantized variables as non-trainable, as
    Keras does for any frozen layer (tfmot lists them as trainable whatever the flag);
  * state in faulty memory (``is_state``) stays out of the trainable weights (tfmot lists every
    quantized variable as trainable) and is listed by the wrapper itself, since the layer
    forgets a variable once its attribute holds the quantized tensor;
  * in training mode the layer gets the state variable itself: BatchNormalization assigns its
    moving statistics there (and normalizes with batch statistics);
  * while Keras infers the output shape (building a functional graph, cloning or loading a
    model), the quantizers are not traced: the shape does not depend on weight values, and
    tracing them took most of ``quantize_model``'s time on large models;
  * ``call`` is converted by autograph only if the wrapped layer's is (a Keras layer's is not):
    the wrapper's own control flow is plain Python, and converting it cost a third of the rest;
  * while ``traced_reads.verify_reads`` traces a call (``_read_probe`` is a list), it records
    each (variable, quantized tensor) its layer reads, and why the layer failed, if it did.
  """

  def _should_use_autograph(self):
    return self.layer._should_use_autograph()  # pylint: disable=protected-access

  def build(self, input_shape):
    super().build(input_shape)
    self._trainable_weights = [w for w in self._trainable_weights if w.trainable]

  @property
  def trainable_weights(self):
    if not self.trainable:  # a frozen layer: its quantized variables are listed as frozen
      return []
    return super().trainable_weights

  @property
  def non_trainable_weights(self):
    state = [w for w, _, _ in getattr(self, "_weight_vars", ()) if not w.trainable]
    frozen = [] if self.trainable else list(self._trainable_weights)
    return self._dedup_weights(
        frozen + state + self.layer.non_trainable_weights + self._non_trainable_weights)

  def call(self, inputs, training=None, **kwargs):
    if any(not w.trainable for w, _, _ in self._weight_vars):
      mode = keras.backend.learning_phase() if training is None else training
      if tf.get_static_value(mode) is None:
        raise ValueError(
            f"layer {self.name!r} keeps state in faulty memory (faulty_state=True) and needs a "
            "training mode known when the graph is built (training=True or False), not a "
            "tensor: in training mode it updates the reliable state, at inference it reads the "
            "faulty one")
    try:
      return super().call(inputs, training=training, **kwargs)
    except Exception as error:  # pylint: disable=broad-except
      if getattr(self, "_read_probe", None) is not None:
        self._read_probe_failure = f"{type(error).__name__}: {str(error).strip()}"
      raise
    finally:
      self._restore_variables()

  @tf.autograph.experimental.do_not_convert
  def _restore_variables(self):
    """Gives the layer's attributes their variables back after it read the quantized tensors.

    So the layer lists (and a .keras file saves) the same variables before and after a call.
    """
    self.quantize_config.set_quantize_weights(
        self.layer, [variable for variable, _, _ in self._weight_vars])

  def _infer_output_signature(self, *args, **kwargs):
    self._shape_only = True
    try:
      return super()._infer_output_signature(*args, **kwargs)
    finally:
      self._shape_only = False

  def _make_quantizer_fn(self, quantizer, x, training, quantizer_vars):
    if getattr(self, "_shape_only", False) or (training and not x.trainable):
      return lambda: x
    quantize = super()._make_quantizer_fn(quantizer, x, training, quantizer_vars)
    probe = getattr(self, "_read_probe", None)
    if probe is None:
      return quantize

    def recorded():
      value = quantize()
      probe.append((x, value))
      return value
    return recorded


def custom_objects():
  """Everything Keras needs to deserialize a tfbet model."""
  objects = dict(keras.utils.get_custom_objects())
  # tfmot deserializes wrapped layers by plain class name: add ours without the package prefix.
  objects.update({name.split(">", 1)[1]: obj for name, obj in list(objects.items())
                  if name.startswith("tfbet>")})
  objects.update({
      "BitErrorQuantizer": quantizers.BitErrorQuantizer,
      "BitErrorQuantizeConfig": BitErrorQuantizeConfig,
      "BitErrorQuantizeWrapper": BitErrorQuantizeWrapper,
      "QuantizedModel": QuantizedModel,
  })
  return objects


def quantize_scope():
  """Context manager for loading/cloning quantized tfbet models."""
  return _tfmot_keras.quantize_scope(custom_objects())


def is_quantized(model):
  return any(isinstance(layer, _tfmot_keras.QuantizeWrapper) for layer in model.layers)


@keras.utils.register_keras_serializable(package="tfbet")
class QuantizedModel(compat.Functional):
  """The functional model ``quantize_model`` returns; only ``save`` and ``summary`` differ.

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

  def summary(self, *args, print_fn=None, **kwargs):  # pylint: disable=arguments-differ
    """Keras' summary, then a line with the model's own parameter count.

    Keras counts every variable, so its "Non-trainable params" include tfbet's bookkeeping (bit
    error masks, loaded codes, quantization ranges, tfmot's step counter), which is not model
    state; the last line separates the two (``tfbet.memory.coverage`` says what is in faulty
    memory).
    """
    super().summary(*args, print_fn=print_fn, **kwargs)
    bookkeeping = set()
    for layer in self.layers:
      if isinstance(layer, _tfmot_keras.QuantizeWrapper):
        if getattr(layer, "optimizer_step", None) is not None:
          bookkeeping.add(id(layer.optimizer_step))
        for _, _, quantizer_vars in getattr(layer, "_weight_vars", ()):
          bookkeeping.update(id(getattr(v, "variable", v)) for v in quantizer_vars.values())
    sizes = {id(w): int(w.shape.num_elements()) for w in self.weights}
    own = sum(size for key, size in sizes.items() if key not in bookkeeping)
    trainable = sum(int(w.shape.num_elements()) for w in self.trainable_weights)
    (print_fn or print)(
        f"tfbet: the model has {own:,} parameters ({trainable:,} trainable); the other "
        f"{sum(sizes.values()) - own:,} of Keras' count are tfbet's bookkeeping (bit error "
        "masks, codes, quantization ranges)")


def _excluded(layer, exclude):
  if exclude is None:
    return False
  if callable(exclude):
    return bool(exclude(layer))
  return layer.name in exclude


def quantize_model(model, scheme="rquant", exclude=None, faulty_state=False):
  """Returns a copy of ``model`` whose trainable parameters live in quantized, faulty memory.

  ``model`` must be a Sequential or functional Keras model (nested ones are inlined, see
  ``flat_models.flatten_model``): it is rebuilt layer by layer with ``clone_model``, which
  subclassed models do not support. ``scheme`` is a preset name of
  ``tfbet.quantization.PRESETS``, a ``QuantizationScheme`` or its ``to_dict`` config.

  Every trainable variable a layer reads is quantized (see the module docstring); if one cannot
  be, this raises ``ValueError`` listing them. ``exclude`` leaves layers in reliable float
  memory on purpose: a collection of layer names, or a predicate ``layer -> bool``.
  ``faulty_state=True`` puts non-trainable float state (BatchNormalization moving statistics)
  into faulty memory too; it needs a per-tensor scheme. ``tfbet.memory.coverage`` states the
  share of parameters in faulty memory.
  """
  scheme = quantization.as_scheme(scheme)
  flat_models.check_graph_model(model, "model")
  if is_quantized(model):
    raise ValueError(f"model {model.name!r} is already quantized"
                     + ("; for its state use with_faulty_state(model)" if faulty_state else ""))
  if faulty_state and not scheme.per_tensor:
    raise ValueError(
        "faulty_state=True needs a per-tensor scheme (normal, asymmetric, unsigned, rquant): "
        f"with one global range ({scheme}) the moving statistics would widen the range every "
        "weight is quantized with, which changes the model beyond its state")
  if exclude is not None and not callable(exclude):
    if isinstance(exclude, str):
      exclude = [exclude]
    exclude = frozenset(exclude)
  flat = flat_models.flatten_model(model)
  if exclude is not None and not callable(exclude):
    unknown = exclude - {layer.name for layer in flat.layers}
    if unknown:
      raise ValueError(f"exclude names layers that model {model.name!r} does not have: "
                       f"{sorted(unknown)}; its layers are {[l.name for l in flat.layers]}")

  uncovered = []
  copies = []  # (original layer, its copy in the quantized model)

  def wrap(layer):
    copy = layer.__class__.from_config(layer.get_config())
    copies.append((layer, copy))
    if _excluded(layer, exclude):
      return copy
    attrs, missing = quantizable_attributes(layer, faulty_state)
    uncovered.extend(f"{layer.name}: {v.name} {tuple(v.shape)}" for v in missing)
    if not attrs:
      return copy
    return BitErrorQuantizeWrapper(copy, BitErrorQuantizeConfig(attrs, scheme))

  with quantize_scope():
    # One clone (tfmot's quantize_apply cloned three times more, for graph rewrites tfbet does
    # not use); the wrappers build their layers and quantizers while it runs.
    quantized = keras.models.clone_model(flat, clone_function=wrap)
  what = "trainable variables" + (" and state" if faulty_state else "")
  if uncovered:
    raise ValueError(
        f"quantize_model cannot put these {what} of model {model.name!r} into "
        "faulty memory (their layers do not read them through an attribute): "
        + "; ".join(uncovered) + ". Leave their layers out explicitly with "
        "quantize_model(..., exclude=[layer names] or a predicate).")
  if not is_quantized(quantized):
    raise ValueError(f"model {model.name!r} has no layer with {what} to quantize")
  for original, copy in copies:
    copy.set_weights(original.get_weights())
  quantized._name = model.name  # pylint: disable=protected-access
  quantized.__class__ = QuantizedModel  # the same graph and state; see QuantizedModel.save
  traced_reads.verify_reads(quantized)
  return quantized


def has_faulty_state(model):
  """True if a quantized model keeps non-trainable state in faulty memory."""
  return any(not weight.trainable for weight, _, _ in _wrapped_variables(model))


def _wrapped_variables(model):
  for layer in model.layers:
    if isinstance(layer, _tfmot_keras.QuantizeWrapper):
      yield from layer._weight_vars  # pylint: disable=protected-access


def float_model(model):
  """The float model inside a quantized one: its layers unwrapped, with the same weights."""
  copies = []

  def unwrap(layer):
    wrapper = layer if isinstance(layer, _tfmot_keras.QuantizeWrapper) else None
    inner = layer.layer if wrapper is not None else layer
    copy = inner.__class__.from_config(inner.get_config())
    copies.append((inner, wrapper, copy))
    return copy

  with quantize_scope():
    unwrapped = keras.models.clone_model(model, clone_function=unwrap)
  for inner, wrapper, copy in copies:
    # A wrapped layer forgets the variables whose attributes hold quantized tensors; its
    # wrapper lists them. Variables are matched by their names within the layer.
    by_name = {}
    for weight in list(inner.weights) + (list(wrapper.weights) if wrapper is not None else []):
      by_name.setdefault(_name_in_layer(weight), weight)
    try:
      copy.set_weights([by_name[_name_in_layer(w)].numpy() for w in copy.weights])
    except KeyError as error:
      raise RuntimeError(f"layer {inner.name!r} has no variable {error}") from error
  unwrapped._name = model.name  # pylint: disable=protected-access
  return unwrapped


def _name_in_layer(variable):
  return variable.name.split("/", 1)[-1]


def with_faulty_state(model):
  """A copy of quantized ``model`` with its non-trainable state in faulty memory too.

  For evaluating a model trained (as in the paper) with reliable state: the trainable
  parameters are quantized with the same per-tensor scheme, so their codes do not change, and
  layers left in float memory stay there.
  """
  if not is_quantized(model):
    raise ValueError(f"model {model.name!r} is not quantized; use "
                     "quantize_model(model, ..., faulty_state=True)")
  if has_faulty_state(model):
    raise ValueError(f"model {model.name!r} already keeps its state in faulty memory")
  schemes = {quantizer.scheme for _, quantizer, _ in _wrapped_variables(model)}
  if len(schemes) != 1:
    raise ValueError(f"model {model.name!r} mixes quantization schemes {schemes}")
  excluded = [l.name for l in model.layers
              if not isinstance(l, _tfmot_keras.QuantizeWrapper) and stored_parameters(l)]
  return quantize_model(float_model(model), schemes.pop(), exclude=excluded or None,
                        faulty_state=True)


def quantized_variables(model):
  """[(float variable, quantizer, quantizer variables dict)] in the order of ``model.weights``.

  This order is the linear memory layout of docs/design.md §3.
  """
  by_id = {id(weight): (weight, quantizer, qvars)
           for weight, quantizer, qvars in _wrapped_variables(model)}
  ordered = [by_id.pop(id(w)) for w in model.weights if id(w) in by_id]
  if by_id:
    raise RuntimeError("quantized variables missing from model.weights: "
                       + ", ".join(v[0].name for v in by_id.values()))
  return ordered
