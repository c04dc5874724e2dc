"""The training job behind ``bin/train``: data, model, quantization, method, checkpoints.

Everything is configured with gin: the run with ``train.*``, each part on itself (the data
``load_data.*``, the model ``get_model.*``, the quantization ``get_scheme.*``, the clipping
``WeightClip.*``, the method ``BitErrorTrainer.*``, the optimizer ``paper_optimizer.*``). The job

* builds the model (a paper model by name, ``get_model``, or the user's ``train.model_fn``),
  constrains its weights (``train.weight_constraint``), wraps it with ``quantize_model`` and a
  ``BitErrorTrainer``;
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
import os
import re
import sys

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfbet import callbacks as callbacks_lib
from tfbet import checks
from tfbet import chips
from tfbet import constraints
from tfbet import data as data_lib
from tfbet import evaluation as evaluation_lib
from tfbet import files
from tfbet import memory
from tfbet import models
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import safe_loading
from tfbet import threads
from tfbet import training
from tfbet.cli import gin_utils
from tfbet.cli import resume
from tfbet.compat import keras

STRATEGIES = (None, "mirrored", "multi_worker")
# The exported model. HDF5, because the Keras v3 ".keras" format cannot reload tfmot wrappers.
MODEL_FILE = "model.h5"
# A recorded training time above this (ten years) is not a measurement.
MAX_TRAIN_SECONDS = 10 * 365 * 24 * 3600


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


# What a collective op raises when a peer of a multi-worker cluster is gone (killed, crashed,
# unreachable): TensorFlow's coordination service notices its missing heartbeats.
PEER_LOSS_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                    tf.errors.AbortedError, tf.errors.CancelledError)


def lost_peer_message(error, command, tf_config=None):
  """One line for a multi-worker run that stopped because a peer is gone, or None.

  Names the peer(s) TensorFlow's message names (``/job:worker/replica:0/task:1``), with the
  address ``TF_CONFIG`` (or ``tf_config``, its JSON text) gives them, and the command that resumes
  the run: the same on every worker, as each restores the chief's last checkpoint.
  """
  kind = next((c for c in type(error).__mro__ if c in PEER_LOSS_ERRORS), None)
  try:
    config = json.loads(os.environ.get("TF_CONFIG", "{}") if tf_config is None else tf_config)
    cluster, task = dict(config.get("cluster") or {}), dict(config.get("task") or {})
    me = (task.get("type"), int(task.get("index", 0)))
  except (ValueError, TypeError, AttributeError):
    return None
  tasks = [(job, i) for job, addresses in cluster.items() for i in range(len(addresses))]
  if kind is None or len(tasks) < 2:
    return None

  def describe(job, index):
    addresses = cluster.get(job) or []
    return f"{job} {index}" + (f" ({addresses[index]})" if index < len(addresses) else "")

  named = []
  for job, index in re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", str(error)):
    if (job, int(index)) != me and (job, int(index)) not in named:
      named.append((job, int(index)))
  peers = ", ".join(describe(*peer) for peer in named) if named else \
      "a peer (one of " + ", ".join(describe(*t) for t in tasks if t != me) + ")"
  return (f"lost {peers} of the multi-worker cluster ({kind.__name__}), so {describe(*me)} "
          "stops too. The checkpoints of the finished epochs are kept in --output_dir: start "
          "every worker again with its own TF_CONFIG and the same command to resume from the "
          f"last one: {command}")


@gin.configurable
def pattern_chip(kind="random", seed=0, path=None):
  """The fixed error pattern of PATTBET: a chip of a registered kind built from a seed (and,
  for kind='profiled', a chip file, path)."""
  return chips.build(kind, "pattern_chip", seed=seed, path=path)


# The parts of a training job, each configured in one place, on itself (as in DDSP): a gin file
# reads like the paper's method (methods/randbet.gin):
#   train.weight_constraint = @WeightClip()    WeightClip.w_max = 0.1
#   BitErrorTrainer.method = 'randbet'         BitErrorTrainer.rate = 0.01
#   get_scheme.name = 'rquant'                 get_scheme.precision = 8
#   paper_optimizer.learning_rate = 0.05
# Each part checks its own values where it is built. What only the job knows (the model, the
# run's seed, the number of steps) is passed by the job and cannot be bound (gin refuses such a
# binding), so no binding is silently overridden. The library classes stay unconfigured:
# gin's bindings reach only the job's calls below. The model is ``train.model_fn`` (default:
# ``get_model``, configured as ``tfbet.models.get_model.*``), the data ``load_data.*``.
WeightClip = gin.external_configurable(constraints.WeightClip, module="tfbet.constraints")
# The trainer settings a gin file may bind (the model, seed and curriculum come from the job).
TRAINER_SETTINGS = ("method", "rate", "allow_high_rate", "loss_threshold",
                    "relative_loss_threshold", "weight_decay", "label_smoothing",
                    "gradient_combination", "pattern", "pattern_condition")
BitErrorTrainer = gin.external_configurable(training.BitErrorTrainer, module="tfbet.training",
                                            allowlist=TRAINER_SETTINGS)
paper_optimizer = gin.external_configurable(training.paper_optimizer, module="tfbet.training",
                                            denylist=["total_steps"])
# RErr while training (off by default): ``train.rerr_monitor = @RErrMonitor`` (no parentheses:
# the job passes the test set) with ``RErrMonitor.rates`` etc.; the test set keeps its batches.
MONITOR_SETTINGS = ("rates", "chips", "every_n_epochs", "max_examples", "allow_high_rate")
RErrMonitor = gin.external_configurable(callbacks_lib.RErrMonitor, module="tfbet.callbacks",
                                        allowlist=MONITOR_SETTINGS)


def _accepts(function, name):
  parameters = inspect.signature(function).parameters.values()
  return any(p.name == name or p.kind == p.VAR_KEYWORD for p in parameters)


def build_model(data, *, seed, weight_constraint=None, model_fn=None):
  """The float model: ``model_fn(num_classes=, input_shape=)`` (default: ``get_model``), also
  given ``kernel_constraint=weight_constraint`` (applied to every weight) when one is set and
  ``seed`` when it takes one."""
  model_fn = model_fn or models.get_model
  kwargs = dict(num_classes=data.num_classes, input_shape=data.input_shape)
  if weight_constraint is not None:
    if not _accepts(model_fn, "kernel_constraint"):
      raise ValueError(f"train.weight_constraint needs train.model_fn ({model_fn.__name__}) to "
                       "take a kernel_constraint argument (applied to every weight of the model)")
    kwargs["kernel_constraint"] = weight_constraint
  if _accepts(model_fn, "seed"):
    kwargs["seed"] = seed
  return model_fn(**kwargs)


def build_trainer(data, *, scheme, seed, total_steps, weight_constraint=None, model_fn=None):
  """Model -> constrained -> quantized (``scheme``) -> ``BitErrorTrainer``, compiled with
  ``paper_optimizer``; the trainer and the optimizer take their settings from gin.

  The schedule counts training steps for every method (the alternating trainer counts its two
  updates of a step as one iteration), so its milestones are at 2/5, 3/5, 4/5 of the steps; a
  curriculum (method 'curricular') spans the first half of them (Tab. 13).
  """
  model = build_model(data, seed=seed, weight_constraint=weight_constraint, model_fn=model_fn)
  qmodel = quantize_configs.quantize_model(model, scheme)
  trainer = BitErrorTrainer(qmodel, seed=seed, curriculum_steps=max(1, total_steps // 2))
  trainer.compile(optimizer=paper_optimizer(total_steps))
  return trainer


def _check_parts(weight_constraint, rerr_monitor=None):
  """Refuses a config that would train something else than it says, before any work.

  The trainer's method has no default here (the class's, RANDBET at 1 %, would be a silent
  choice), and the parameters of ``WeightClip`` or ``pattern_chip`` must not be bound (to
  anything but None, which the method files without clipping bind to undo an earlier include)
  while the job does not use them: gin itself never complains about an unused configurable.
  """
  try:
    gin.query_parameter("BitErrorTrainer.method")
  except ValueError:
    raise ValueError("no training method: bind BitErrorTrainer.method (one of "
                     f"{training.METHODS}), e.g. include 'methods/rquant.gin' or "
                     "'methods/randbet.gin'") from None
  unused = []
  if weight_constraint is None:
    unused.append(("WeightClip", ("w_max",), "train.weight_constraint = @WeightClip()"))
  if rerr_monitor is None:
    unused.append(("RErrMonitor", MONITOR_SETTINGS, "train.rerr_monitor = @RErrMonitor"))
  if not _is_bound("BitErrorTrainer.pattern"):
    unused.append(("pattern_chip", ("kind", "seed", "path"),
                   "BitErrorTrainer.pattern = @pattern_chip()"))
  for configurable, parameters, use in unused:
    bound = [f"{configurable}.{p}" for p in parameters if _is_bound(f"{configurable}.{p}")]
    if bound:
      raise ValueError(f"{', '.join(bound)} is bound but {configurable} is not used; add "
                       f"'{use}' or remove the binding")


def _is_bound(name):
  """Whether gin binds ``name`` to something other than None."""
  try:
    return gin.query_parameter(name) is not None
  except ValueError:
    return False


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


class _OneEpochPerFit(keras.callbacks.Callback):
  """Ends a ``fit`` after its first epoch: each epoch is a fit of its own (its own data), while
  ``fit(epochs=<the run's epochs>)`` lets Keras count them as a user does ("Epoch 3/4")."""

  def on_epoch_end(self, epoch, logs=None):
    self.model.stop_training = True


@resume.holds_output_lock
@gin.configurable
def train(output_dir, *, epochs=gin.REQUIRED, seed=0, distribute=None, evaluate_every_epoch=True,
          verbose=1, model_fn=None, weight_constraint=None, rerr_monitor=None):
  """Trains one model; see the module docstring. Returns the result dict.

  The run is configured here, the parts on themselves (see ``BitErrorTrainer``, ``WeightClip``,
  ``paper_optimizer`` above, ``tfbet.quantization.get_scheme``, ``load_data``).

  Args:
    output_dir: where checkpoints, logs, the operative config and the final model go.
    epochs: number of epochs (paper: 100 on MNIST, 250 on CIFAR).
    seed: seed of initialization and bit errors, in [0, 2**22) (the data seed is
      load_data.seed, in [0, 2**63)).
    distribute: None, "mirrored" or "multi_worker" (tf.distribute strategy).
    evaluate_every_epoch: clean test error after each epoch.
    verbose: Keras progress output (0, 1 or 2); 1 (a progress bar) becomes 2 (a line per epoch)
      when stdout is not a terminal, so logs hold lines, not thousands of bar updates.
    model_fn: a function building a functional float Keras classifier (e.g. ``@my_model``, gin
      configurable in a module given by --gin_module), called as ``model_fn(num_classes=...,
      input_shape=...)`` plus ``kernel_constraint`` when a weight constraint is set and ``seed``
      when it takes one; None: the paper models, ``tfbet.models.get_model``.
    weight_constraint: the constraint of every weight, e.g. ``@WeightClip()`` (CLIPPING and
      RANDBET, with ``WeightClip.w_max``); None: no clipping.
    rerr_monitor: ``@RErrMonitor`` (``tfbet.callbacks``, without parentheses) to log RErr on
      the test set every ``RErrMonitor.every_n_epochs`` epochs into the history, TensorBoard
      and result.json; None (default): off.
    restart (keyword, not a gin parameter): discard what an earlier run left in output_dir.
  """
  checks.count(epochs, "train.epochs", minimum=1)
  seed = training.check_seed(seed, "train.seed")
  checks.choice(verbose, "train.verbose", (0, 1, 2))
  checks.boolean(evaluate_every_epoch, "train.evaluate_every_epoch")
  if weight_constraint is not None and not callable(weight_constraint):
    raise checks.ArgumentTypeError(f"train.weight_constraint must be a constraint such as "
                                   f"@WeightClip() or None, got {weight_constraint!r}")
  if rerr_monitor is not None and not callable(rerr_monitor):
    raise checks.ArgumentTypeError(f"train.rerr_monitor must be @RErrMonitor or None, got "
                                   f"{rerr_monitor!r}")
  _check_parts(weight_constraint, rerr_monitor)
  scheme = quantization.get_scheme()
  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  data = data_lib.load_data()
  total_steps = data.steps_per_epoch * epochs
  strategy = make_strategy(distribute)
  write_dir = worker_write_dir(strategy, output_dir)
  tf.io.gfile.makedirs(write_dir)
  with strategy.scope():
    trainer = build_trainer(data, scheme=scheme, seed=seed, total_steps=total_steps,
                            weight_constraint=weight_constraint, model_fn=model_fn)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(trainer=trainer, optimizer=trainer.optimizer,
                                     epoch=epoch_var)
  monitor = rerr_monitor(data.test_dataset()) if rerr_monitor is not None else None
  # After the parts are built: a bad value of a part leaves no record behind.
  resume.check_config(output_dir)
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
  if monitor is not None:  # First: the history, checkpoints and TensorBoard get its values.
    callbacks.insert(0, monitor)
  for epoch in range(start_epoch, epochs):
    # One fit call per epoch, so each epoch gets its own (seed, epoch)-determined batches.
    trainer.fit(
        data.train_dataset(epoch), epochs=epochs, initial_epoch=epoch,
        validation_data=data.test_dataset() if evaluate_every_epoch else None,
        callbacks=callbacks + [_OneEpochPerFit()], verbose=2 if verbose == 1 and not sys.stdout.isatty() else verbose)
  gin_utils.save_operative_config(write_dir)
  result = export(trainer, data, write_dir, history=progress.whole_history(),
                  seconds=progress.seconds, epochs=epochs)
  if write_dir != output_dir:
    tf.io.gfile.rmtree(write_dir)
  return result


def injection_record(trainer, history, steps_per_epoch, epochs):
  """When bit error injection started, from the per-epoch share of injecting steps.

  None for a clean method. Injection is sticky, so in the first epoch with a share s > 0 it
  started s * steps_per_epoch steps before the epoch's end; ``start_step`` is the 0-based
  index of the first injecting step, ``start_epoch`` 1-based as Keras prints epochs. Without
  a complete history (a damaged progress record) only whether it started is known, from the
  trainer's flag.
  """
  if trainer.method == "clean":
    return None
  record = {"method": trainer.method, "started": bool(trainer.injecting.numpy()),
            "start_step": None, "start_epoch": None,
            "total_steps": steps_per_epoch * epochs if epochs else None,
            "threshold": trainer.describe_threshold()}
  shares = (history or {}).get("injecting", [])
  if epochs and len(shares) == epochs:
    for epoch, share in enumerate(shares):
      if share > 0:
        record.update(start_epoch=epoch + 1, start_step=steps_per_epoch * (epoch + 1)
                      - int(round(share * steps_per_epoch)))
        break
  return record


def describe_injection(record):
  """One line on when injection started, or a warning that it never did (None: clean)."""
  if record is None:
    return None
  name = record["method"].upper()
  if not record["started"]:
    return (f"WARNING: {name} never injected bit errors: the clean loss never fell below "
            f"{record['threshold']}, so this is a clean (CLIPPING) model. Lower the threshold "
            "(BitErrorTrainer.loss_threshold, or .relative_loss_threshold) or train longer.")
  if record["start_step"] is None:
    return f"{name} injected bit errors (when it started is unknown: no complete history)"
  share = record["start_step"] / record["total_steps"]
  line = (f"{name} injected bit errors from step {record['start_step'] + 1} of "
          f"{record['total_steps']} (epoch {record['start_epoch']})")
  if share > 0.5:
    line = (f"WARNING: {line}: more than half of the training was clean; lower the "
            f"threshold ({record['threshold']}) or train longer")
  return line


def export(trainer, data, output_dir, history=None, seconds=None, epochs=None):
  """Writes model.h5, memory.npz and result.json for the trained quantized model.

  result.json records when bit error injection started (``injection_record``; needs the
  number of ``epochs`` trained, else only whether it started). ``history`` and ``seconds``
  (training time) are written as null, "unknown", when None.
  """
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
      "history": history,
      "train_seconds": seconds,
      "worker_threads": threads.current(),
  }
  if trainer.method != "clean":
    result["injection"] = injection_record(trainer, history, data.steps_per_epoch, epochs)
  with files.atomic_open(os.path.join(output_dir, "result.json")) as f:
    json.dump(result, f, indent=2)
  return result  # bin/train prints the result's line (once)


def read_result(path):
  """The ``result.json`` of a finished run, with the fields a report uses checked.

  ``num_weights`` is a count; ``train_seconds`` a finite time in [0, MAX_TRAIN_SECONDS] or None
  (unknown: not recorded, or lost with a damaged progress record); ``history`` a dict of metric
  name -> list of finite numbers, or None (unknown), whose "error" values lie in [0, 1]. A bad
  file raises ValueError naming the file and the field.
  """
  record = files.read_json(path, "training result")
  try:
    if not isinstance(record, dict):
      raise checks.ArgumentTypeError(f"must hold a JSON object, got {type(record).__name__}")
    if "num_weights" not in record:
      raise ValueError("field num_weights is missing")
    checks.integer(record["num_weights"], "num_weights", 0, evaluation_lib.MAX_COUNT)
    if record.get("train_seconds") is not None:
      checks.real(record["train_seconds"], "train_seconds", 0, MAX_TRAIN_SECONDS)
    history = record.get("history")
    if history is not None:
      if not isinstance(history, dict):
        raise checks.ArgumentTypeError(f"history must be a dict of metric lists, got "
                                       f"{history!r:.100}")
      for key, values in history.items():
        if not isinstance(values, list):
          raise checks.ArgumentTypeError(f"history.{key} must be a list, got {values!r:.100}")
        low, high = (0.0, 1.0) if key.endswith("error") else (-math.inf, math.inf)
        for epoch, value in enumerate(values):
          checks.real(value, f"history.{key}[{epoch}]", low, high)
  except (TypeError, ValueError) as error:
    raise ValueError(f"training result {os.fspath(path)!r}: {error}") from error
  return record


def load_model(path):
  """Loads a model saved by ``bin/train`` (model.h5) without running code from the file."""
  return safe_loading.load_model(path)


def weights_digest(model):
  """A digest of all weights, to compare runs bit for bit."""
  h = hashlib.sha256()
  for w in model.get_weights():
    h.update(np.ascontiguousarray(w).tobytes())
  return h.hexdigest()
