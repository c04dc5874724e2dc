"""Random bit error training (RANDBET, Alg. 1) and its variants, as a Keras ``train_step``.

``BitErrorTrainer`` is a Keras model around a quantized functional model (tfmot cannot quantize
subclassed models, so the custom step lives outside): its ``call`` is the quantized model's, it
is built on construction, and it keeps the Keras contract of ``compile``/``fit``/``evaluate``/
``predict`` and the standard callbacks. One training step:

1. clip: the weights satisfy their constraints (``WeightClip``; Alg. 1 line 6): the optimizer
   projects them after every update and ``compile`` projects the initial weights;
2. quantize (the ``BitErrorQuantizer``s; a global range is refreshed first);
3. clean forward/backward pass with all error masks zero;
4. once the clean loss has dropped below ``loss_threshold`` (1.75, App. F; sticky afterwards):
   load bit errors and do a perturbed forward/backward pass;
   ``relative_loss_threshold`` states it as a share of the clean loss of the first step instead
   (0.76 is the paper's 1.75 for cross-entropy over 10 classes), for other losses and class
   counts. A ``fit`` that ends without injection logs a warning saying so: the model would be
   a CLIPPING model, not a RANDBET one;
5. update the float weights with both gradients combined (``gradient_combination``, below).

Alg. 1 is ambiguous about step 5: its line 15 writes ``w - lr (grad + grad~)`` while its caption
and line 14 say the two gradients are averaged. ``gradient_combination="sum"`` (the default,
line 15, and what this library has always done) updates with ``grad + grad~``;
``"average"`` with ``(grad + grad~) / 2`` -- the same direction at half the step, i.e. the sum
at half the learning rate. Averaging needs two gradients: a step that does not inject (before
the loss threshold) has only the clean one and uses it unscaled, so ``"average"`` changes only
the injecting steps. The default stays the sum because line 15 is the one equation of the
update and because it keeps the results of earlier runs; the choice is a constructor argument
(and ``BitErrorTrainer.gradient_combination`` in gin) so that both can be run.

Both passes use the compiled loss (``compile(loss=..., loss_weights=...)``, sample and class
weights, regularization losses). Without a ``loss``, the paper's cross-entropy
(``CrossEntropy``: sparse or one-hot labels, label smoothing, logits or -- for a model ending in
a softmax -- probabilities). The logs hold ``loss`` and ``error`` of the clean pass, the compiled
metrics of the clean pass, ``perturbed_loss`` and ``perturbed_error`` (averaged over the steps
that injected errors) and ``injecting`` (the share of such steps). ``error`` is the share of
misclassified examples, unweighted like Keras' ``metrics`` (use ``weighted_metrics`` for
weighted ones); ``loss`` is the compiled loss, weighted.

Methods (``method``; each is a small class in ``tfbet.training_methods``):

* ``"clean"``: steps 1-3 and 5 without errors (NORMAL, RQUANT, CLIPPING);
* ``"randbet"``: a fresh random chip every step, seed ``(seed + 1) * 2**40 + step``, disjoint
  from the small seeds used by evaluation chips (below 2**40). ``seed`` is in [0, 2**22)
  (``SEED_LIMIT``), so step seeds stay below 2**62 + 2**40 and never overflow int64, and the
  step seeds of different trainer seeds never meet (a run would need 2**40 steps);
* ``"pattbet"``: one fixed error pattern every step (Tab. 3): ``pattern`` is a chip
  (``RandomChip``, ``ProfiledChip``, ...) and ``pattern_condition`` its rate or voltage;
* ``"curricular"``: RANDBET with p rising linearly from p/20 to p over ``curriculum_steps``
  (half of training, Tab. 13);
* ``"alternating"``: a clean update, then a perturbed update whose result is projected back to
  the per-tensor ranges after the clean update (App. G.4; two optimizer updates per step).
  ``gradient_combination`` has no role here (each gradient makes its own update); ``"average"``
  is refused rather than ignored.

``optimizer.iterations`` counts training steps (batches) for every method: the alternating step
rewinds it by one before its perturbed update, so both updates of a step use the learning rate
of that step and the schedule's milestones (``paper_learning_rate(total_steps)``) fall at 2/5,
3/5 and 4/5 of the training steps whether or not (and since when) the step makes a second
update -- the paper's schedule is one of epochs, not of optimizer calls. The step's chip seed is
the step number, as for ``"randbet"``.

Weight decay is added to the gradient of every optimizer update (coupled L2 as in PyTorch's
SGD, App. F): once per step, twice in an alternating step that injects (once per update).
"""
import math

from absl import logging
import tensorflow as tf

from tfbet import checks
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import training_methods
from tfbet.compat import keras

METHODS = tuple(training_methods.METHODS)
GRADIENT_COMBINATIONS = ("sum", "average")
_SEED_STRIDE = 2 ** 40
# App. F: injection starts once the clean loss is below 1.75, a value made for the cross-entropy
# over 10 classes (0.76 of its start, log 10 = 2.30).
PAPER_LOSS_THRESHOLD = 1.75
# Trainer seeds are below this, so that (seed + 1) * _SEED_STRIDE + step fits in an int64.
SEED_LIMIT = 2 ** 22


def check_seed(value, name="seed"):
  """A trainer seed: an integer in [0, 2**22) (``SEED_LIMIT``), so step seeds fit in an int64."""
  try:
    return checks.integer(value, name, minimum=0, maximum=SEED_LIMIT - 1)
  except ValueError as error:
    raise type(error)(f"{error} (the per-step chip seeds (seed + 1) * 2**40 + step must fit in "
                      "an int64)") from error


def _check_label_smoothing(value):
  value = checks.real(value, "label_smoothing", 0.0, 1.0)
  if value == 1.0:
    raise ValueError("label_smoothing must be in [0, 1), got 1.0 (no mass left for the label)")
  return value


def _is_one_hot(y_true, y_pred):
  """Labels are one-hot (or soft) when they have the prediction's shape, else class indices."""
  return (y_true.shape.rank == y_pred.shape.rank and y_true.shape[-1] is not None
          and y_true.shape[-1] == y_pred.shape[-1] and y_pred.shape[-1] != 1)


def class_indices(y_true, y_pred):
  """The true class of each example, for sparse (class index) or one-hot labels."""
  if _is_one_hot(y_true, y_pred):
    return tf.argmax(y_true, -1, output_type=tf.int32)
  return tf.cast(tf.reshape(y_true, [-1]), tf.int32)


def classification_errors(y_true, y_pred):
  """1.0 per misclassified example, else 0.0 (logits or probabilities, any label form)."""
  predicted = tf.argmax(y_pred, -1, output_type=tf.int32)
  return tf.cast(tf.not_equal(predicted, class_indices(y_true, y_pred)), tf.float32)


@keras.utils.register_keras_serializable(package="tfbet")
class CrossEntropy(keras.losses.Loss):
  """The paper's loss: categorical cross-entropy for sparse or one-hot labels, with label
  smoothing as the paper defines it (Tab. 2).

  With ``label_smoothing`` s and K classes the target is 1 - s for the true class and
  s / (K - 1) for each other one (0.9 and 0.1/9 for s = 0.1 on 10 classes): the label's
  probability mass s is spread over the wrong classes only. Keras' own ``label_smoothing``
  spreads s over all K classes (0.91 and 0.01); it is not used. Soft labels y become
  (1 - s) y + s (1 - y) / (K - 1), which still sums to 1.
  """

  def __init__(self, from_logits=True, label_smoothing=0.0, name="cross_entropy", **kwargs):
    super().__init__(name=name, **kwargs)
    self.from_logits = checks.boolean(from_logits, "from_logits")
    self.label_smoothing = _check_label_smoothing(label_smoothing)

  def call(self, y_true, y_pred):
    y_true = tf.convert_to_tensor(y_true)  # also when called directly on numpy labels
    if _is_one_hot(y_true, y_pred):
      one_hot = tf.cast(y_true, y_pred.dtype)
    else:
      one_hot = tf.one_hot(class_indices(y_true, y_pred), tf.shape(y_pred)[-1],
                           dtype=y_pred.dtype)
    if self.label_smoothing:
      others = tf.cast(tf.shape(y_pred)[-1] - 1, y_pred.dtype)
      one_hot = ((1.0 - self.label_smoothing) * one_hot
                 + self.label_smoothing * (1.0 - one_hot) / others)
    return keras.losses.categorical_crossentropy(one_hot, y_pred, from_logits=self.from_logits)

  def get_config(self):
    return {**super().get_config(), "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing}


def _output_layer(model):
  """The layer producing ``model``'s (single) output, through tfmot wrappers and nesting."""
  layer = model.get_layer(model.output_names[0])
  while True:
    if hasattr(layer, "output_names") and hasattr(layer, "get_layer"):  # a nested model
      layer = layer.get_layer(layer.output_names[0])
    elif isinstance(getattr(layer, "layer", None), keras.layers.Layer):  # a wrapper
      layer = layer.layer
    else:
      return layer


def outputs_probabilities(model):
  """Whether ``model`` ends in a softmax (probabilities) or returns logits.

  Read from the output layer: a ``Softmax`` layer or a softmax ``activation`` gives
  probabilities, any other ``activation`` (linear, the paper's models) logits. A layer without
  one (e.g. a ``Lambda``) is refused, naming it, rather than guessed.
  """
  layer = _output_layer(model)
  if isinstance(layer, keras.layers.Softmax):
    return True
  if not hasattr(layer, "activation"):
    raise ValueError(
        f"cannot tell whether the output layer {layer.name!r} ({type(layer).__name__}) gives "
        "logits or probabilities; compile the trainer with an explicit loss, e.g. "
        "loss=tfbet.training.CrossEntropy(from_logits=False) for probabilities")
  activation = getattr(layer.activation, "activation", layer.activation)  # tfmot's wrapper
  return getattr(activation, "__name__", "") == "softmax"


class BitErrorTrainer(keras.Model):
  """Trains a quantized classifier ``model`` with clipping and (random) bit error injection.

  ``save`` writes the quantized model (what evaluation needs; load it inside
  ``tfbet.quantize_scope()``); ``save_weights`` and ``tf.train.Checkpoint`` hold the whole
  training state (weights, optimizer, the injection flag).

  ``rate`` is a fraction (1 % is 0.01); above 0.5 it looks like a percent and is refused unless
  ``allow_high_rate=True``. ``gradient_combination`` is "sum" or "average" (module docstring).
  """

  def __init__(self, model, *, method="randbet", rate=0.01, loss_threshold=None, seed=0,
               weight_decay=5e-4, label_smoothing=0.0, pattern=None, pattern_condition=None,
               curriculum_steps=None, gradient_combination="sum", allow_high_rate=False,
               relative_loss_threshold=None, **kwargs):
    super().__init__(name=kwargs.pop("name", "bit_error_trainer"), **kwargs)
    checks.choice(method, "method", METHODS)
    checks.choice(gradient_combination, "gradient_combination", GRADIENT_COMBINATIONS)
    rate = checks.rate(rate, "rate", allow_high_rate)
    self._method = training_methods.METHODS[method](
        rate, gradient_combination=gradient_combination, curriculum_steps=curriculum_steps,
        pattern=pattern, pattern_condition=pattern_condition)
    if loss_threshold is not None and relative_loss_threshold is not None:
      raise ValueError("give loss_threshold (an absolute loss) or relative_loss_threshold (a "
                       "share of the first step's loss), not both")
    if relative_loss_threshold is not None:
      relative_loss_threshold = checks.real(relative_loss_threshold, "relative_loss_threshold",
                                            minimum=0.0)
      if relative_loss_threshold <= 0.0:
        raise ValueError("relative_loss_threshold must be > 0 (a share of the first step's "
                         f"loss), got {relative_loss_threshold}")
      self.initial_loss = training_methods.local_variable("initial_loss", math.nan, tf.float32)
    else:
      loss_threshold = checks.real(
          PAPER_LOSS_THRESHOLD if loss_threshold is None else loss_threshold, "loss_threshold")
    label_smoothing = _check_label_smoothing(label_smoothing)
    weight_decay = checks.real(weight_decay, "weight_decay", minimum=0.0)
    seed = check_seed(seed)
    if len(model.outputs) != 1 or model.output_shape[-1] is None or model.output_shape[-1] < 2:
      raise ValueError("BitErrorTrainer trains classifiers with one output of >= 2 classes "
                       f"(logits or probabilities); got output shape(s) {model.output_shape}")
    self.model = model
    self.method = method
    self.rate = rate
    self.loss_threshold = loss_threshold
    self.relative_loss_threshold = relative_loss_threshold
    self.seed = seed
    self.weight_decay = weight_decay
    self.gradient_combination = gradient_combination
    self.label_smoothing = label_smoothing
    self.curriculum_steps = self._method.curriculum_steps
    self.layout = memory.layout(model)
    self.injecting = training_methods.local_variable("injecting", False, tf.bool)
    self._method.build(self.layout)
    self.trackers = {name: keras.metrics.Mean(name=name) for name in (
        "loss", "error", "perturbed_loss", "perturbed_error", "injecting")}
    self._evaluating = False
    # Built now, so summary(), save_weights() and checkpoints work before the first fit.
    self.build(model.input_shape)

  @property
  def metrics(self):
    # The trainer's own trackers and the compiled metrics; the compiled loss's own "loss" mean
    # is left out because the perturbed pass evaluates the compiled loss too. While evaluating,
    # exactly the metrics test_step returns: Keras takes the final results from ``self.metrics``
    # (synchronized across workers) only when the names match; otherwise, under
    # MultiWorkerMirroredStrategy, it sums the workers' local results.
    names = ("loss", "error") if self._evaluating else tuple(self.trackers)
    compiled = self.compiled_metrics.metrics if self.compiled_metrics is not None else []
    return [self.trackers[name] for name in names] + list(compiled)

  def evaluate(self, *args, **kwargs):
    self._evaluating = True
    try:
      return super().evaluate(*args, **kwargs)
    finally:
      self._evaluating = False

  def call(self, inputs, training=None):
    return self.model(inputs, training=training)

  def compile(self, optimizer="sgd", loss=None, *args, **kwargs):
    """Keras' ``compile``; ``loss=None`` is the paper's cross-entropy (``CrossEntropy``, with
    the trainer's ``label_smoothing``, from probabilities if the model ends in a softmax).

    Also builds the optimizer's slots (the step updates inside ``tf.cond``) and clips.

    The trainer's ``weight_decay`` (default 5e-4, App. F) is added to every gradient on top of
    whatever ``optimizer`` does; construct the trainer with ``weight_decay=0`` to leave decay
    to the optimizer alone. An optimizer with its own ``weight_decay`` gets a warning.
    """
    self._warn_about_settings(optimizer, custom_loss=loss is not None)
    if loss is None:
      loss = CrossEntropy(from_logits=not outputs_probabilities(self.model),
                          label_smoothing=self.label_smoothing)
    elif self.label_smoothing:
      raise ValueError("label_smoothing applies to the default loss only; with compile(loss=...)"
                       " set it on the loss (or pass loss=None)")
    super().compile(optimizer, loss, *args, **kwargs)
    self.optimizer.build(self.model.trainable_variables)
    self.clip_weights()

  def save(self, filepath, *args, **kwargs):
    """Saves the quantized model (the trainer's ``call``): the artifact evaluation loads."""
    with quantize_configs.quantize_scope():
      self.model.save(filepath, *args, **kwargs)

  def _warn_about_settings(self, optimizer, custom_loss):
    """Warns where a default of the paper may not fit the user's set-up."""
    own_decay = getattr(optimizer, "weight_decay", None)
    if self.weight_decay and own_decay:
      logging.warning(
          "BitErrorTrainer adds weight decay %g to every gradient and the optimizer decays "
          "weights itself (weight_decay=%g): both apply. Use BitErrorTrainer(weight_decay=0) "
          "to keep only the optimizer's.", self.weight_decay, float(own_decay))
    elif self.weight_decay and not isinstance(optimizer, str):
      logging.info("BitErrorTrainer adds weight decay %g to every gradient of %s "
                   "(BitErrorTrainer(weight_decay=0) turns it off)", self.weight_decay,
                   type(optimizer).__name__)
    classes = self.model.output_shape[-1]
    if (self._method.injects and self.relative_loss_threshold is None
        and self.loss_threshold == PAPER_LOSS_THRESHOLD and (custom_loss or classes != 10)):
      logging.warning(
          "loss_threshold=%g (App. F) is made for the cross-entropy over 10 classes; with %s "
          "the clean loss may never fall below it, and %s would then train without bit errors. "
          "Consider relative_loss_threshold=0.76 (a share of the first step's loss).",
          PAPER_LOSS_THRESHOLD, "a custom loss" if custom_loss else f"{classes} classes",
          self.method.upper())

  def threshold(self, loss=None):
    """The clean loss below which injection starts (App. F); ``loss`` fixes a relative one."""
    if self.relative_loss_threshold is None:
      return tf.constant(self.loss_threshold, tf.float32)
    if loss is not None:
      first = tf.math.is_nan(self.initial_loss)
      self.initial_loss.assign(tf.where(first, tf.cast(loss, tf.float32), self.initial_loss))
    return self.relative_loss_threshold * self.initial_loss

  def describe_threshold(self):
    if self.relative_loss_threshold is None:
      return f"loss_threshold={self.loss_threshold:g}"
    start = float(self.initial_loss.numpy())
    return (f"relative_loss_threshold={self.relative_loss_threshold:g} (of the first step's "
            f"loss {start:.4g}: {self.relative_loss_threshold * start:.4g})")

  def fit(self, *args, **kwargs):  # pylint: disable=signature-differs
    """Keras' ``fit``; logs a warning if bit error injection has not started by its end."""
    history = super().fit(*args, **kwargs)
    if self._method.injects and not bool(self.injecting.numpy()):
      losses = history.history.get("loss") or [float("nan")]
      logging.warning(
          "%s has not injected any bit errors yet: the clean loss (%.4g at the last epoch) "
          "has not fallen below %s. Trained so far, the model is a clean (CLIPPING) model, not a "
          "%s one. Train longer, or set the threshold for this loss (loss_threshold, or "
          "relative_loss_threshold as a share of the first step's loss).",
          self.method.upper(), losses[-1], self.describe_threshold(), self.method.upper())
    return history

  # -- the rate and seed of a step's bit errors (its method loads them) ------------------------

  def current_rate(self):
    """The bit error rate of this step (rises over time for curricular RANDBET)."""
    return self._method.rate_at(self.optimizer.iterations)

  def step_seed(self):
    return (self.seed + 1) * _SEED_STRIDE + tf.cast(self.optimizer.iterations, tf.int64)

  # -- pieces of the step ---------------------------------------------------------------------

  def clip_weights(self):
    """Projects every constrained weight onto its constraint (eagerly, cross-replica)."""
    for var in self.model.trainable_variables:
      if getattr(var, "constraint", None) is not None:
        var.assign(var.constraint(var))

  def project_to_ranges(self, ranges):
    """Clips each quantized float tensor to (q_min, q_max), in cross-replica context."""
    def project(strategy, ranges):
      for slot, (q_min, q_max) in zip(self.layout.slots, ranges):
        strategy.extended.update(
            slot.variable, lambda v, lo, hi: v.assign(tf.clip_by_value(v, lo, hi)),
            args=(q_min, q_max))
    tf.distribute.get_replica_context().merge_call(project, args=(ranges,))

  def _loss_and_gradients(self, x, y, sample_weight):
    """Forward/backward pass with the compiled loss (scaled for the replicas, as Keras does)."""
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      loss = self.compute_loss(x, y, y_pred, sample_weight)
    grads = tape.gradient(loss, variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    return y_pred, loss, grads

  def apply_update(self, grads):
    """One optimizer update with ``grads`` plus the weight decay (added once per update)."""
    variables = self.model.trainable_variables
    if self.weight_decay:
      # The optimizer sums the replicas' gradients (each the gradient of its share of the global
      # mean loss), so each replica adds its share of the decay.
      decay = self.weight_decay / tf.distribute.get_replica_context().num_replicas_in_sync
      grads = [g + decay * v for g, v in zip(grads, variables)]
    self.optimizer.apply_gradients(zip(grads, variables))

  def tensor_ranges(self):
    """The (q_min, q_max) of every quantized float tensor now."""
    scheme = self.layout.scheme
    return [quantization.tensor_range(slot.variable, scheme) for slot in self.layout.slots]

  def _track_clean_pass(self, y, y_pred, sample_weight, global_loss):
    batch_size = tf.shape(y_pred)[0]
    self.trackers["loss"].update_state(global_loss, sample_weight=batch_size)
    self.trackers["error"].update_state(classification_errors(y, y_pred))
    self.compiled_metrics.update_state(y, y_pred, sample_weight)

  def _logs(self, names):
    logs = {name: self.trackers[name].result() for name in names}
    for metric in self.compiled_metrics.metrics:
      result = metric.result()
      logs.update(result if isinstance(result, dict) else {metric.name: result})
    return logs

  @staticmethod
  def _unpack(data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
      raise ValueError("BitErrorTrainer needs labels: fit/evaluate on (x, y) or "
                       "(x, y, sample_weight)")
    return x, y, sample_weight

  # -- the step ---------------------------------------------------------------------------------

  def train_step(self, data):
    x, y, sample_weight = self._unpack(data)
    memory.update_global_range(self.layout)
    y_pred, loss, grads = self._loss_and_gradients(x, y, sample_weight)
    replica = tf.distribute.get_replica_context()
    # The compiled loss is scaled by 1 / replicas: the sum over replicas is the global loss.
    global_loss = replica.all_reduce(tf.distribute.ReduceOp.SUM, loss)
    if self._method.injects:
      self.injecting.assign(tf.logical_or(self.injecting, global_loss < self.threshold(global_loss)))
    injecting = tf.logical_and(self.injecting, self._method.injects)
    nothing = (tf.zeros_like(loss), tf.zeros(tf.shape(y_pred)[:1], tf.float32))

    def perturbed_pass():
      memory.update_global_range(self.layout)
      self._method.load_errors(self)
      p_pred, p_loss, p_grads = self._loss_and_gradients(x, y, sample_weight)
      self._method.clear_errors(self.layout)
      return p_loss, classification_errors(y, p_pred), p_grads

    p_loss, p_errors = self._method.update(self, grads, injecting, perturbed_pass, nothing)
    self._track_clean_pass(y, y_pred, sample_weight, global_loss)
    self.trackers["injecting"].update_state(tf.cast(injecting, tf.float32))
    if not self._method.injects:
      return self._logs(["loss", "error", "injecting"])
    # Averaged over the steps that injected errors only; collective ops outside tf.cond.
    weight = tf.cast(injecting, tf.float32)
    global_p_loss = replica.all_reduce(tf.distribute.ReduceOp.SUM, p_loss)
    self.trackers["perturbed_loss"].update_state(
        global_p_loss, sample_weight=weight * tf.cast(tf.shape(y_pred)[0], tf.float32))
    self.trackers["perturbed_error"].update_state(p_errors, sample_weight=weight)
    return self._logs(["loss", "error", "injecting", "perturbed_loss", "perturbed_error"])

  def test_step(self, data):
    x, y, sample_weight = self._unpack(data)
    y_pred = self(x, training=False)
    loss = self.compute_loss(x, y, y_pred, sample_weight)
    global_loss = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, loss)
    self._track_clean_pass(y, y_pred, sample_weight, global_loss)
    return self._logs(["loss", "error"])


def paper_learning_rate(total_steps, initial=0.05, factor=0.1, milestones=(0.4, 0.6, 0.8)):
  """App. F: lr 0.05, multiplied by 0.1 after 2/5, 3/5 and 4/5 of training.

  ``total_steps`` counts training steps (batches), as ``BitErrorTrainer`` counts
  ``optimizer.iterations`` for every method (one per step, also for "alternating"). The
  schedule is called with the number of steps done, so step ``round(m * total_steps)`` (0-based)
  is the first at the lower rate: after 40 of 100 steps, as after 40 of 100 epochs.
  """
  total_steps = checks.count(total_steps, "total_steps", minimum=1)
  initial = checks.positive(initial, "learning_rate")
  # PiecewiseConstantDecay keeps a value while step <= boundary; the first step is at `initial`.
  boundaries = [max(0, int(round(m * total_steps)) - 1) for m in milestones]
  values = [initial * factor ** i for i in range(len(boundaries) + 1)]
  return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def paper_optimizer(total_steps, learning_rate=0.05, momentum=0.9, nesterov=True):
  """SGD with momentum and the step schedule of App. F (weight decay lives in the trainer).

  ``learning_rate`` is the initial rate of the schedule (``paper_learning_rate``).
  """
  momentum = checks.real(momentum, "momentum", 0.0, 1.0)
  if momentum == 1.0:
    raise ValueError("momentum must be in [0, 1), got 1.0")
  nesterov = checks.boolean(nesterov, "nesterov")
  return keras.optimizers.SGD(learning_rate=paper_learning_rate(total_steps, learning_rate),
                              momentum=momentum, nesterov=nesterov)
