"""Random bit error training (RANDBET, Alg. 1) and its variants, as a Keras ``train_step``.

``BitErrorTrainer`` is an outer Keras model around a quantized functional model (tfmot cannot
quantize subclassed models, so the custom step lives outside). One step:

1. clip: the weights satisfy their constraints (``WeightClip``; Alg. 1 line 6): the optimizer
   projects them after every update and ``compile`` projects the initial weights;
2. quantize (the ``BitErrorQuantizer``s; a global range is refreshed first);
3. clean forward/backward pass with all error masks zero;
4. once the clean loss has dropped below ``loss_threshold`` (1.75, App. F; sticky afterwards):
   load bit errors and do a perturbed forward/backward pass;
5. update the float weights with the sum of both gradients (``w -= lr (grad + grad~)``).

Methods (``method``):

* ``"clean"``: steps 1-3 and 5 without errors (NORMAL, RQUANT, CLIPPING);
* ``"randbet"``: a fresh random chip every step, seed ``(seed + 1) * 2**40 + step``, disjoint
  from the small seeds used by evaluation chips;
* ``"pattbet"``: one fixed error pattern every step (Tab. 3): ``pattern`` is a chip
  (``RandomChip``, ``ProfiledChip``, ...) and ``pattern_condition`` its rate or voltage;
* ``"curricular"``: RANDBET with p rising linearly from p/20 to p over ``curriculum_steps``
  (half of training, Tab. 13);
* ``"alternating"``: a clean update, then a perturbed update whose result is projected back to
  the per-tensor ranges after the clean update (App. G.4; two optimizer updates per step).

Weight decay is added to the gradient (coupled L2 as in PyTorch's SGD, App. F).
"""
import numpy as np
import tensorflow as tf

from tfbet import memory
from tfbet import quantization
from tfbet import quantizers
from tfbet.compat import keras

METHODS = ("clean", "randbet", "pattbet", "curricular", "alternating")
_SEED_STRIDE = 2 ** 40


def _local_variable(name, value, dtype):
  """A per-replica variable: every replica computes the same value, no cross-device sync."""
  return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                     synchronization=tf.VariableSynchronization.ON_READ,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def _local_bytes(name, value):
  """A per-replica uint8 tensor, held as a ``ByteVariable`` (collectives carry no uint8)."""
  value = np.asarray(value, np.uint8)
  words = _local_variable(name, quantizers.ByteVariable.pack(value, value.shape), tf.int32)
  return quantizers.ByteVariable(words, value.shape)


def _errors(logits, y_onehot):
  """1.0 per misclassified example, else 0.0."""
  return tf.cast(tf.not_equal(tf.argmax(logits, -1), tf.argmax(y_onehot, -1)), tf.float32)


class BitErrorTrainer(keras.Model):
  """Trains a quantized ``model`` with clipping and (random) bit error injection."""

  def __init__(self, model, *, method="randbet", rate=0.01, loss_threshold=1.75, seed=0,
               weight_decay=5e-4, label_smoothing=0.0, pattern=None, pattern_condition=None,
               curriculum_steps=None, **kwargs):
    super().__init__(name=kwargs.pop("name", "bit_error_trainer"), **kwargs)
    if method not in METHODS:
      raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
      raise ValueError(f"rate must be a bit error probability in [0, 1], got {rate}")
    if method in ("randbet", "curricular", "alternating") and rate == 0.0:
      raise ValueError(f"method {method!r} needs rate > 0")
    if not 0.0 <= label_smoothing < 1.0:
      raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if weight_decay < 0:
      raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if method == "curricular" and (curriculum_steps is None or curriculum_steps < 1):
      raise ValueError("method 'curricular' needs curriculum_steps >= 1 (half the training steps)")
    if method == "alternating" and tf.distribute.has_strategy() and not isinstance(
        tf.distribute.get_strategy(), tf.distribute.OneDeviceStrategy):
      raise ValueError("method 'alternating' makes two optimizer updates per step and cannot "
                       "run under a distribution strategy; use 'randbet'")
    if method == "pattbet" and (pattern is None or pattern_condition is None):
      raise ValueError("method 'pattbet' needs pattern (a chip) and pattern_condition")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
      raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    self.model = model
    self.method = method
    self.rate = rate
    self.loss_threshold = float(loss_threshold)
    self.seed = int(seed)
    self.weight_decay = float(weight_decay)
    self.curriculum_steps = curriculum_steps
    self.layout = memory.layout(model)
    self.loss_fn = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=label_smoothing,
        reduction=keras.losses.Reduction.NONE)
    self.injecting = _local_variable("injecting", False, tf.bool)
    self._pattern = None
    if method == "pattbet":
      masks = pattern.masks(self.layout.num_weights, self.layout.precision, pattern_condition)
      self._pattern = [[_local_bytes(f"pattern_{name}_{i}", part)
                        for i, part in enumerate(self.layout.split(mask))]
                       for name, mask in zip(("flip", "set", "clear"), masks)]
    self.trackers = {name: keras.metrics.Mean(name=name) for name in (
        "loss", "error", "perturbed_loss", "perturbed_error", "injecting")}
    self._evaluating = False

  @property
  def metrics(self):
    # While evaluating, exactly the metrics test_step returns: Keras takes the final results from
    # ``self.metrics`` (synchronized across workers) only when the names match; otherwise, under
    # MultiWorkerMirroredStrategy, it sums the workers' local results.
    names = ("loss", "error") if self._evaluating else tuple(self.trackers)
    return [self.trackers[name] for name in names]

  def evaluate(self, *args, **kwargs):
    self._evaluating = True
    try:
      return super().evaluate(*args, **kwargs)
    finally:
      self._evaluating = False

  def call(self, inputs, training=None):
    return self.model(inputs, training=training)

  # -- pieces of the step ---------------------------------------------------------------------

  def current_rate(self):
    """The bit error rate of this step (rises over time for curricular RANDBET)."""
    if self.method != "curricular":
      return tf.constant(self.rate, tf.float64)
    progress = tf.minimum(
        tf.cast(self.optimizer.iterations, tf.float64) / float(self.curriculum_steps), 1.0)
    return self.rate / 20.0 + (self.rate - self.rate / 20.0) * progress

  def step_seed(self):
    return (self.seed + 1) * _SEED_STRIDE + tf.cast(self.optimizer.iterations, tf.int64)

  def _load_errors(self):
    if self._pattern is not None:
      for name, variables in zip(("flip", "set", "clear"), self._pattern):
        for slot, var in zip(self.layout.slots, variables):
          slot.qvars[name].assign(var)
    else:
      memory.assign_random_flips(self.layout, self.step_seed(), self.current_rate())

  def _clear_errors(self):
    # Random chips only write the flip masks; a pattern may use all three.
    names = ("flip", "set", "clear") if self._pattern is not None else ("flip",)
    for slot in self.layout.slots:
      for name in names:
        slot.qvars[name].assign(tf.zeros(slot.shape, tf.uint8))

  def clip_weights(self):
    """Projects every constrained weight onto its constraint (eagerly, cross-replica)."""
    for var in self.model.trainable_variables:
      if getattr(var, "constraint", None) is not None:
        var.assign(var.constraint(var))

  def compile(self, optimizer="sgd", **kwargs):
    """Also builds the optimizer's slots (the step updates inside ``tf.cond``) and clips."""
    super().compile(optimizer=optimizer, **kwargs)
    self.optimizer.build(self.model.trainable_variables)
    self.clip_weights()

  def _project_to_ranges(self, ranges):
    """Clips each quantized float tensor to (q_min, q_max), in cross-replica context."""
    def project(strategy, ranges):
      for slot, (q_min, q_max) in zip(self.layout.slots, ranges):
        strategy.extended.update(
            slot.variable, lambda v, lo, hi: v.assign(tf.clip_by_value(v, lo, hi)),
            args=(q_min, q_max))
    tf.distribute.get_replica_context().merge_call(project, args=(ranges,))

  def _loss_and_gradients(self, x, y_onehot):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = self.model(x, training=True)
      per_example = self.loss_fn(y_onehot, logits)
      loss = tf.nn.compute_average_loss(per_example)
    grads = tape.gradient(loss, variables)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
    return tf.reduce_mean(per_example), tf.reduce_mean(_errors(logits, y_onehot)), grads

  def _one_hot(self, labels):
    return tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), self.model.output_shape[-1])

  def _apply(self, grads):
    variables = self.model.trainable_variables
    if self.weight_decay:
      # The optimizer sums the replicas' gradients (each the gradient of its share of the global
      # mean loss), so each replica adds its share of the decay.
      decay = self.weight_decay / tf.distribute.get_replica_context().num_replicas_in_sync
      grads = [g + decay * v for g, v in zip(grads, variables)]
    self.optimizer.apply_gradients(zip(grads, variables))

  def _tensor_ranges(self):
    scheme = self.layout.scheme
    return [quantization.tensor_range(slot.variable, scheme) for slot in self.layout.slots]

  # -- the step ---------------------------------------------------------------------------------

  def train_step(self, data):
    x, y = data
    y_onehot = self._one_hot(y)
    memory.update_global_range(self.layout)
    loss, error, grads = self._loss_and_gradients(x, y_onehot)
    replica = tf.distribute.get_replica_context()
    global_loss = replica.all_reduce(tf.distribute.ReduceOp.MEAN, loss)
    if self.method != "clean":
      self.injecting.assign(tf.logical_or(self.injecting, global_loss < self.loss_threshold))
    injecting = tf.logical_and(self.injecting, self.method != "clean")

    nan = tf.constant(np.nan, tf.float32)

    def no_errors():
      return nan, nan, [tf.zeros_like(g) for g in grads]

    def perturbed_pass():
      memory.update_global_range(self.layout)
      self._load_errors()
      p_loss, p_error, p_grads = self._loss_and_gradients(x, y_onehot)
      self._clear_errors()
      return p_loss, p_error, p_grads

    if self.method == "clean":
      p_loss, p_error = nan, nan
      self._apply(grads)
    elif self.method == "alternating":
      # Two updates; the second one inside the branch (not possible under a distribution
      # strategy, where optimizer updates must not sit inside control flow).
      self._apply(grads)
      ranges = self._tensor_ranges()

      def perturbed_update():
        p_loss, p_error, p_grads = perturbed_pass()
        self._apply(p_grads)
        self._project_to_ranges(ranges)
        return p_loss, p_error

      p_loss, p_error = tf.cond(injecting, perturbed_update, lambda: (nan, nan))
    else:
      # Only the forward/backward pass is conditional; one update with the summed gradients
      # (zeros while not injecting), outside control flow so it also works under
      # MirroredStrategy.
      p_loss, p_error, p_grads = tf.cond(injecting, perturbed_pass, no_errors)
      self._apply([g + pg for g, pg in zip(grads, p_grads)])
    self.trackers["loss"].update_state(loss)
    self.trackers["error"].update_state(error)
    self.trackers["injecting"].update_state(tf.cast(injecting, tf.float32))
    if self.method != "clean":
      # Averaged over the steps that injected errors only.
      weight = tf.cast(injecting, tf.float32)
      self.trackers["perturbed_loss"].update_state(tf.where(injecting, p_loss, 0.0), weight)
      self.trackers["perturbed_error"].update_state(tf.where(injecting, p_error, 0.0), weight)
    return {name: tracker.result() for name, tracker in self.trackers.items()}

  def test_step(self, data):
    x, y = data
    y_onehot = self._one_hot(y)
    logits = self.model(x, training=False)
    self.trackers["loss"].update_state(self.loss_fn(y_onehot, logits))
    self.trackers["error"].update_state(_errors(logits, y_onehot))
    return {"loss": self.trackers["loss"].result(), "error": self.trackers["error"].result()}


def paper_learning_rate(total_steps, initial=0.05, factor=0.1, milestones=(0.4, 0.6, 0.8)):
  """App. F: lr 0.05, multiplied by 0.1 after 2/5, 3/5 and 4/5 of training."""
  if total_steps < 1:
    raise ValueError(f"total_steps must be >= 1, got {total_steps}")
  boundaries = [max(1, int(round(m * total_steps))) for m in milestones]
  values = [initial * factor ** i for i in range(len(boundaries) + 1)]
  return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def paper_optimizer(total_steps, initial_lr=0.05, momentum=0.9, nesterov=True):
  """SGD with momentum and the step schedule of App. F (weight decay lives in the trainer)."""
  return keras.optimizers.SGD(learning_rate=paper_learning_rate(total_steps, initial_lr),
                              momentum=momentum, nesterov=nesterov)
