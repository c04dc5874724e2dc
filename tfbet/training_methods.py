"""The training methods of ``BitErrorTrainer``, one small class each (see ``tfbet.training``).

A method states what sets it apart: the settings it needs (checked here, once), whether it loads
bit errors at all, which ones a perturbed pass loads (a fresh random chip every step or one fixed
pattern), at which rate (constant, or rising for curricular RANDBET), and how a step updates the
weights (clean gradients only, clean and perturbed ones combined in one update, or two updates).
The trainer runs the passes and owns the optimizer; a new method is a class here and its entry
in ``METHODS``.
"""
import numpy as np
import tensorflow as tf

from tfbet import checks
from tfbet import memory
from tfbet import quantizers


def local_variable(name, value, dtype):
  """A per-replica variable: every replica computes the same value, no cross-device sync."""
  return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                     synchronization=tf.VariableSynchronization.ON_READ,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def _local_bytes(name, value):
  """A per-replica uint8 tensor, held as a ``ByteVariable`` (collectives carry no uint8)."""
  value = np.asarray(value, np.uint8)
  words = local_variable(name, quantizers.ByteVariable.pack(value, value.shape), tf.int32)
  return quantizers.ByteVariable(words, value.shape)


class Clean:
  """NORMAL, RQUANT, CLIPPING: no bit errors; one update with the clean gradients.

  The base of the other methods: it holds the settings every method is given and refuses a
  pattern, which only PATTBET takes.
  """
  name = "clean"
  injects = False  # loads bit errors (once the clean loss is below the threshold)
  needs_rate = False  # refuses rate 0

  def __init__(self, rate, gradient_combination="sum", curriculum_steps=None, pattern=None,
               pattern_condition=None):
    if self.needs_rate and rate == 0.0:
      raise ValueError(f"method {self.name!r} needs rate > 0")
    if pattern is not None or pattern_condition is not None:  # PATTBET takes them before
      raise ValueError(f"pattern and pattern_condition apply to method 'pattbet' only, not "
                       f"{self.name!r} (they would be ignored)")
    self.rate = rate
    self.gradient_combination = gradient_combination
    self.curriculum_steps = curriculum_steps

  def build(self, layout):
    """Creates what the method keeps per model (``layout``: its memory layout)."""

  def rate_at(self, iterations):
    """The bit error rate of step ``iterations`` (float64)."""
    del iterations
    return tf.constant(self.rate, tf.float64)

  def update(self, trainer, grads, injecting, perturbed_pass, nothing):
    """Updates the weights from the clean ``grads``; returns the perturbed (loss, errors).

    ``perturbed_pass()`` loads the step's bit errors, runs the forward/backward pass and clears
    them: (loss, errors, gradients). ``nothing`` is what a step that does not inject reports.
    """
    del injecting, perturbed_pass
    trainer.apply_update(grads)
    return nothing


class RandBET(Clean):
  """RANDBET (Alg. 1): a fresh random chip every step; the clean and perturbed gradients
  combined in one update (``gradient_combination``, ``tfbet.training``)."""
  name = "randbet"
  injects = True
  needs_rate = True

  def load_errors(self, trainer):
    """Loads the bit errors of the trainer's current step into the masks."""
    memory.assign_random_flips(trainer.layout, trainer.step_seed(), trainer.current_rate())

  def clear_errors(self, layout):
    for slot in layout.slots:  # random chips only write the flip masks
      memory.clear_slot(slot, ("flip",))

  def update(self, trainer, grads, injecting, perturbed_pass, nothing):
    # Only the forward/backward pass is conditional; one update with the combined gradients
    # (the perturbed ones are zeros while not injecting), outside control flow so it also
    # works under MirroredStrategy.
    p_loss, p_errors, p_grads = tf.cond(
        injecting, perturbed_pass, lambda: (*nothing, [tf.zeros_like(g) for g in grads]))
    combined = [g + pg for g, pg in zip(grads, p_grads)]
    if self.gradient_combination == "average":
      # The mean of two gradients; a step without the perturbed one keeps the clean one.
      scale = tf.where(injecting, 0.5, 1.0)
      combined = [c * tf.cast(scale, c.dtype) for c in combined]
    trainer.apply_update(combined)
    return p_loss, p_errors


class PattBET(RandBET):
  """PATTBET (Tab. 3): one fixed error pattern, ``pattern`` (a chip) at ``pattern_condition``
  (its rate or voltage), every step."""
  name = "pattbet"
  needs_rate = False

  def __init__(self, rate, pattern=None, pattern_condition=None, **settings):
    super().__init__(rate, **settings)
    if pattern is None or pattern_condition is None:
      raise ValueError("method 'pattbet' needs pattern (a chip) and pattern_condition")
    self.pattern = pattern
    self.pattern_condition = pattern_condition
    self._masks = None

  def build(self, layout):
    masks = self.pattern.masks(layout.num_weights, layout.precision, self.pattern_condition)
    self._masks = [[_local_bytes(f"pattern_{name}_{i}", part)
                    for i, part in enumerate(layout.split(mask))]
                   for name, mask in zip(memory.MASK_NAMES, masks)]

  def load_errors(self, trainer):
    for index, slot in enumerate(trainer.layout.slots):
      memory.assign_masks(slot, {name: variables[index] for name, variables in
                                 zip(memory.MASK_NAMES, self._masks)})

  def clear_errors(self, layout):
    for slot in layout.slots:  # a pattern may use all three masks
      memory.clear_slot(slot, memory.MASK_NAMES)


class Curricular(RandBET):
  """Curricular RANDBET (Tab. 13): p rises linearly from p/20 to p over ``curriculum_steps``
  (half of training)."""
  name = "curricular"

  def __init__(self, rate, curriculum_steps=None, **settings):
    super().__init__(rate, **settings)
    if curriculum_steps is None:
      raise ValueError("method 'curricular' needs curriculum_steps >= 1 (half the training "
                       "steps)")
    self.curriculum_steps = checks.count(curriculum_steps, "curriculum_steps", minimum=1)

  def rate_at(self, iterations):
    progress = tf.minimum(tf.cast(iterations, tf.float64) / float(self.curriculum_steps), 1.0)
    return self.rate / 20.0 + (self.rate - self.rate / 20.0) * progress


class Alternating(RandBET):
  """Alternating RANDBET (App. G.4): a clean update, then a perturbed one whose result is
  projected back to the per-tensor ranges after the clean update (two optimizer updates)."""
  name = "alternating"

  def __init__(self, rate, gradient_combination="sum", **settings):
    if gradient_combination != "sum":
      raise ValueError("gradient_combination='average' does not apply to method 'alternating' "
                       "(its clean and perturbed gradients make separate updates); use 'sum'")
    super().__init__(rate, gradient_combination, **settings)
    if tf.distribute.has_strategy() and not isinstance(
        tf.distribute.get_strategy(), tf.distribute.OneDeviceStrategy):
      raise ValueError("method 'alternating' makes two optimizer updates per step and cannot "
                       "run under a distribution strategy; use 'randbet'")

  def update(self, trainer, grads, injecting, perturbed_pass, nothing):
    # Two updates; the second one inside the branch (not possible under a distribution
    # strategy, where optimizer updates must not sit inside control flow).
    trainer.apply_update(grads)
    ranges = trainer.tensor_ranges()

    def perturbed_update():
      # The step's second update reuses its iteration: the schedule counts steps.
      trainer.optimizer.iterations.assign_sub(1)
      p_loss, p_errors, p_grads = perturbed_pass()
      trainer.apply_update(p_grads)
      trainer.project_to_ranges(ranges)
      return p_loss, p_errors

    return tf.cond(injecting, perturbed_update, lambda: nothing)


METHODS = {method.name: method for method in (Clean, RandBET, PattBET, Curricular, Alternating)}
