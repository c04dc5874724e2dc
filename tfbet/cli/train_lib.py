"""The training job behind ``bin/train``: data, model, quantization, method, checkpoints.

Everything is configured with gin (``train.*``, ``load_data.*``, ``get_model.*``). The job

* builds the model (a paper model by name, ``get_model``, or the user's ``train.model_fn``),
  wraps it with ``quantize_model`` and a ``BitErrorTrainer``;
* trains epoch by epoch; the batches of epoch e are a pure function of (data seed, e) and the
  bit errors of step t of (trainer seed, t), so a job resumed from its last checkpoint continues
  exactly like an uninterrupted one;
* checkpoints after every epoch (``tf.train.CheckpointManager``: data files first, then the
  index, so a kill never leaves a half-written "latest" checkpoint), writes TensorBoard logs and
  the operative gin config, and exports the final model (``model.h5``) and its memory image
  (``memory.npz``) plus ``result.json`` with the clean test error.

Across workers (``distribute="multi_worker"``) every worker runs all of this, because saving and
evaluating involve collectives, but only the chief writes ``output_dir``; the others write to
``output_dir/workertemp_<task id>`` and remove it (``worker_write_dir``). All workers resume from
the chief's checkpoints, so ``output_dir`` must be on a file system they share.
"""
import hashlib
import inspect
import json
import math
import numbers
import os
import sys

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfbet import chips
from tfbet import constraints
from tfbet import data as data_lib
from tfbet import files
from tfbet import memory
from tfbet import models
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import safe_loading
from tfbet import training
from tfbet.cli import gin_utils
from tfbet.cli import resume
from tfbet.compat import keras

STRATEGIES = (None, "mirrored", "multi_worker")
# The exported model. HDF5, because the Keras v3 ".keras" format cannot reload tfmot wrappers.
MODEL_FILE = "model.h5"


def make_strategy(name):
  """None (default), "mirrored" (all local devices) or "multi_worker" (TF_CONFIG cluster)."""
  if name is None or name == "none":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"distribute must be one of {STRATEGIES}, got {name!r}")


def worker_write_dir(strategy, output_dir):
  """Where this process writes: ``output_dir`` on the chief or without a cluster.

  The other workers of a multi-worker cluster write to ``output_dir/workertemp_<task id>``, to be
  removed once written (TensorFlow's convention, as in Keras' own callbacks).
  """
  if strategy.extended.should_checkpoint:
    return output_dir
  return os.path.join(output_dir, f"workertemp_{strategy.cluster_resolver.task_id}")


def _check_workers_agree(strategy, start_epoch):
  """Refuses to train when the workers of a cluster would resume from different epochs."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return
  epochs = strategy.gather(strategy.experimental_distribute_values_from_function(
      lambda _: tf.constant([start_epoch], tf.int64)), axis=0).numpy()
  if len(set(epochs.tolist())) > 1:
    raise ValueError(
        f"the workers found checkpoints of different epochs {epochs.tolist()} (one per replica) "
        "under --output_dir: it must be a directory all workers share (e.g. NFS or gs://), "
        "where they read the chief's checkpoints")


@gin.configurable
def pattern_chip(kind="random", seed=0, path=None):
  """The fixed error pattern of PATTBET: a random chip (seed) or a chip file (path)."""
  if kind == "random":
    return chips.RandomChip(seed)
  if kind == "profiled":
    if path is None:
      raise ValueError("pattern_chip.path is required for kind='profiled'")
    return chips.ProfiledChip.load(path, seed=seed)
  raise ValueError(f"pattern_chip.kind must be 'random' or 'profiled', got {kind!r}")


def _accepts(function, name):
  parameters = inspect.signature(function).parameters.values()
  return any(p.name == name or p.kind == p.VAR_KEYWORD for p in parameters)


def build_model(data, *, w_max, seed, model_fn=None):
  """The float model: ``model_fn(num_classes=, input_shape=)`` (default: ``get_model``), also
  given ``kernel_constraint`` (clipping to [-w_max, w_max]) when ``w_max`` is set and ``seed``
  when it takes one."""
  model_fn = model_fn or models.get_model
  kwargs = dict(num_classes=data.num_classes, input_shape=data.input_shape)
  if w_max is not None:
    if not _accepts(model_fn, "kernel_constraint"):
      raise ValueError(f"train.w_max needs train.model_fn ({model_fn.__name__}) to take a "
                       "kernel_constraint argument (applied to every weight of the model)")
    kwargs["kernel_constraint"] = constraints.WeightClip(w_max)
  if _accepts(model_fn, "seed"):
    kwargs["seed"] = seed
  return model_fn(**kwargs)


def build_trainer(data, *, scheme, w_max, method, rate, loss_threshold, seed, label_smoothing,
                  weight_decay, learning_rate, momentum, nesterov, total_steps,
                  pattern_condition, model_fn=None, gradient_combination="sum",
                  allow_high_rate=False):
  """Model -> clipped -> quantized -> BitErrorTrainer, compiled with the paper's optimizer.

  The schedule counts training steps for every method (the alternating trainer counts its two
  updates of a step as one iteration), so its milestones are at 2/5, 3/5, 4/5 of the steps.
  """
  model = build_model(data, w_max=w_max, seed=seed, model_fn=model_fn)
  qmodel = quantize_configs.quantize_model(model, scheme)
  trainer = training.BitErrorTrainer(
      qmodel, method=method, rate=rate, loss_threshold=loss_threshold, seed=seed,
      weight_decay=weight_decay, label_smoothing=label_smoothing,
      pattern=pattern_chip() if method == "pattbet" else None,
      pattern_condition=pattern_condition,
      curriculum_steps=max(1, total_steps // 2) if method == "curricular" else None,
      gradient_combination=gradient_combination, allow_high_rate=allow_high_rate)
  trainer.compile(optimizer=training.paper_optimizer(
      total_steps, learning_rate, momentum, nesterov))
  return trainer


class _EpochCheckpoint(keras.callbacks.Callback):
  """Saves the run's progress, then a checkpoint (and the epoch reached), after every epoch."""

  def __init__(self, manager, epoch_var, progress, remove=False):
    super().__init__()
    self.manager = manager
    self.epoch_var = epoch_var
    self.progress = progress
    self.remove = remove  # a non-chief worker's temporary copy

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_var.assign(epoch + 1)
    self.progress.save()  # First: a checkpoint never lacks its progress record.
    path = self.manager.save(checkpoint_number=epoch + 1)
    if self.remove:
      tf.io.gfile.rmtree(self.manager.directory)
    logging.info("epoch %d: checkpoint %s", epoch + 1, path)


def check_arguments(*, epochs, precision, w_max, rate, loss_threshold, seed, label_smoothing,
                    weight_decay, learning_rate, momentum, gradient_combination="sum",
                    int_conversion="truncate"):
  """ValueError naming the first bad ``train.*`` value, before any work is done."""
  def number(name, value, low, high, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
        not math.isfinite(value) or value < low or value > high or \
        (low_open and value == low) or (high_open and value == high):
      interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
      raise ValueError(f"train.{name} must be a finite number in {interval}, got {value!r}")

  if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
    raise ValueError(f"train.epochs must be a positive integer, got {epochs!r}")
  if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 8:
    raise ValueError(f"train.precision must be an integer in 1..8, got {precision!r}")
  if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < training.SEED_LIMIT:
    raise ValueError(f"train.seed must be an integer in [0, 2**22), got {seed!r} (the per-step "
                     "chip seeds (seed + 1) * 2**40 + step must fit in an int64)")
  if w_max is not None:
    number("w_max", w_max, 0, math.inf, low_open=True, high_open=True)
  number("rate", rate, 0, 1)
  number("loss_threshold", loss_threshold, -math.inf, math.inf, True, True)
  number("label_smoothing", label_smoothing, 0, 1, high_open=True)
  number("weight_decay", weight_decay, 0, math.inf, high_open=True)
  number("learning_rate", learning_rate, 0, math.inf, low_open=True, high_open=True)
  number("momentum", momentum, 0, 1, high_open=True)
  for name, value, choices in (
      ("gradient_combination", gradient_combination, training.GRADIENT_COMBINATIONS),
      ("int_conversion", int_conversion, quantization.INT_CONVERSIONS)):
    if value not in choices:
      raise ValueError(f"train.{name} must be one of {choices}, got {value!r}")


@resume.holds_output_lock
@gin.configurable
def train(output_dir, *, epochs=gin.REQUIRED, scheme="rquant", precision=8, w_max=None,
          method="clean", rate=0.0, loss_threshold=1.75, pattern_condition=None, seed=0,
          label_smoothing=0.0, weight_decay=5e-4, learning_rate=0.05, momentum=0.9,
          nesterov=True, distribute=None, evaluate_every_epoch=True, verbose=1, model_fn=None,
          gradient_combination="sum", int_conversion="truncate", allow_high_rate=False):
  """Trains one model; see the module docstring. Returns the result dict.

  Args:
    output_dir: where checkpoints, logs, the operative config and the final model go.
    epochs: number of epochs (paper: 100 on MNIST, 250 on CIFAR).
    scheme, precision: quantization preset (tfbet.quantization.PRESETS) and bits m.
    int_conversion: "truncate" (toward zero, default) or "floor" (Eq. 1's bracket): how a
      scheme without rounding ('global', 'normal', 'asymmetric', 'unsigned') makes integers;
      refused with a rounding scheme.
    w_max: weight clipping bound (CLIPPING / RANDBET_w_max), None for no clipping.
    method: tfbet.training.METHODS ("clean", "randbet", "pattbet", "curricular",
      "alternating").
    rate: bit error rate p during training (RANDBET), a fraction (1 % is 0.01).
    allow_high_rate: accept rate > 0.5 (refused by default: it looks like a percent).
    gradient_combination: "sum" (default, Alg. 1 line 15) or "average" (its caption) of the
      clean and perturbed gradients of an injecting step (randbet, pattbet, curricular).
    loss_threshold: inject bit errors once the clean loss is below this (App. F: 1.75).
    pattern_condition: PATTBET rate (random chip) or voltage (profiled chip).
    seed: seed of initialization and bit errors, in [0, 2**22) (the data seed is
      load_data.seed, in [0, 2**63)).
    label_smoothing: label smoothing s of the cross-entropy as in the paper (Tab. 2): target
      1 - s for the true class, s / (K - 1) for each other one.
    weight_decay, learning_rate, momentum, nesterov: SGD of App. F.
    distribute: None, "mirrored" or "multi_worker" (tf.distribute strategy).
    evaluate_every_epoch: clean test error after each epoch.
    verbose: Keras progress output (0, 1 or 2); 1 (a progress bar) becomes 2 (a line per epoch)
      when stdout is not a terminal, so logs hold lines, not thousands of bar updates.
    model_fn: a function building a functional float Keras classifier (e.g. ``@my_model``, gin
      configurable in a module given by --gin_module), called as ``model_fn(num_classes=...,
      input_shape=...)`` plus ``kernel_constraint`` when w_max is set and ``seed`` when it
      takes one; None: the paper models, ``tfbet.models.get_model``.
    restart (keyword, not a gin parameter): discard what an earlier run left in output_dir.
  """
  check_arguments(epochs=epochs, precision=precision, w_max=w_max, rate=rate,
                  loss_threshold=loss_threshold, seed=seed, label_smoothing=label_smoothing,
                  weight_decay=weight_decay, learning_rate=learning_rate, momentum=momentum,
                  gradient_combination=gradient_combination, int_conversion=int_conversion)
  resume.check_config(output_dir)
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  data = data_lib.load_data()
  total_steps = data.steps_per_epoch * epochs
  scheme_obj = quantization.get_scheme(scheme, precision, int_conversion)
  strategy = make_strategy(distribute)
  write_dir = worker_write_dir(strategy, output_dir)
  tf.io.gfile.makedirs(write_dir)
  with strategy.scope():
    trainer = build_trainer(
        data, scheme=scheme_obj, w_max=w_max, method=method, rate=rate,
        loss_threshold=loss_threshold, seed=seed, label_smoothing=label_smoothing,
        weight_decay=weight_decay, learning_rate=learning_rate, momentum=momentum,
        nesterov=nesterov, total_steps=total_steps, pattern_condition=pattern_condition,
        model_fn=model_fn, gradient_combination=gradient_combination,
        allow_high_rate=allow_high_rate)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(trainer=trainer, optimizer=trainer.optimizer,
                                     epoch=epoch_var)
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(write_dir, "checkpoints"),
                                       max_to_keep=2)
  # Every worker resumes from the chief's checkpoints (the chief's manager is its own).
  chief_manager = manager if write_dir == output_dir else tf.train.CheckpointManager(
      checkpoint, os.path.join(output_dir, "checkpoints"), max_to_keep=2)
  restored = resume.restore_newest_intact(checkpoint, chief_manager)
  if restored:
    logging.info("resumed from %s (epoch %d)", restored, int(epoch_var.numpy()))
  gin_utils.save_operative_config(write_dir)
  start_epoch = int(epoch_var.numpy())
  _check_workers_agree(strategy, start_epoch)
  progress = resume.Progress(output_dir, start_epoch)  # Saved by the chief only.
  callbacks = [
      progress,
      _EpochCheckpoint(manager, epoch_var, progress, remove=write_dir != output_dir),
      keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard"), update_freq="epoch"),
  ]
  for epoch in range(start_epoch, epochs):
    # One fit call per epoch, so each epoch gets its own (seed, epoch)-determined batches.
    trainer.fit(
        data.train_dataset(epoch), epochs=epoch + 1, initial_epoch=epoch,
        validation_data=data.test_dataset() if evaluate_every_epoch else None,
        callbacks=callbacks, verbose=2 if verbose == 1 and not sys.stdout.isatty() else verbose)
  gin_utils.save_operative_config(write_dir)
  result = export(trainer, data, write_dir, history=progress.history, seconds=progress.seconds)
  if write_dir != output_dir:
    tf.io.gfile.rmtree(write_dir)
  return result


def export(trainer, data, output_dir, history=None, seconds=None):
  """Writes model.h5, memory.npz and result.json for the trained quantized model."""
  qmodel = trainer.model
  mem = memory.layout(qmodel)
  memory.clear_masks(mem)
  memory.update_global_range(mem)
  model_path = os.path.join(output_dir, MODEL_FILE)
  with quantize_configs.quantize_scope(), files.atomic_path(model_path) as temporary:
    qmodel.save(temporary)
  memory.export_image(qmodel, os.path.join(output_dir, "memory.npz"))
  evaluation = trainer.evaluate(data.test_dataset(), verbose=0, return_dict=True)
  result = {
      "test_error": float(evaluation["error"]),
      "test_loss": float(evaluation["loss"]),
      "num_weights": mem.num_weights,
      "scheme": mem.scheme.to_dict(),
      "history": history or {},
      "train_seconds": seconds,
  }
  with files.atomic_open(os.path.join(output_dir, "result.json")) as f:
    json.dump(result, f, indent=2)
  logging.info("clean test error %.4f (%d weights) -> %s", result["test_error"],
               mem.num_weights, output_dir)
  return result


def load_model(path):
  """Loads a model saved by ``bin/train`` (model.h5) without running code from the file."""
  return safe_loading.load_model(path)


def weights_digest(model):
  """A digest of all weights, to compare runs bit for bit."""
  h = hashlib.sha256()
  for w in model.get_weights():
    h.update(np.ascontiguousarray(w).tobytes())
  return h.hexdigest()
