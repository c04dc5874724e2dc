"""Resuming a training run safely: one process per output directory, same config, intact state.

``bin/train`` resumes an output directory that holds checkpoints. That is only right when

* no other process trains into the same directory (``OutputLock``: a lock file with host and
  PID; a lock left by a dead process on this host is taken over with a warning);
* the checkpoints were trained with the same configuration (``check_config``: the gin
  bindings, less ``train.verbose``, are recorded in ``checkpoints/config.gin`` when a run starts
  and compared when it resumes; ``clear_run`` -- ``bin/train --restart`` -- starts over);
* the checkpoint reads back (``restore_newest_intact``: a damaged newest checkpoint is skipped,
  with a warning, for the newest intact one; ``remove_interrupted_checkpoint_writes`` removes
  the ``ckpt-N_temp/`` folder a killed checkpoint write leaves);
* the history and training time of earlier sessions are kept (``Progress``, saved next to the
  checkpoints after every epoch), so ``result.json`` covers the whole run.
"""
import difflib
import functools
import json
import os
import re
import shutil
import socket
import time

from absl import logging
import gin
import tensorflow as tf

from tfbet import checks
from tfbet import files
from tfbet.cli import gin_utils
from tfbet.compat import keras

LOCK_FILE = ".lock"
CONFIG_FILE = "config.gin"
PROGRESS_FILE = "progress.json"
CHECKPOINT_DIR = "checkpoints"
# Bindings that do not change what is trained.
UNRECORDED_BINDINGS = ("train.verbose",)
# What a run writes into its output directory (removed by ``clear_run``).
RUN_OUTPUTS = (CHECKPOINT_DIR, "tensorboard", "operative_config.gin", "model.h5", "memory.npz",
               "result.json")


def _is_chief():
  """False only for a non-chief worker of a TF_CONFIG cluster (they share the directory)."""
  try:
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  except ValueError:
    return True
  if not task:
    return True
  cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
  if "chief" in cluster:
    return task.get("type") == "chief"
  return task.get("type") in ("chief", "worker") and int(task.get("index", 0)) == 0


def _pid_alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class OutputLock:
  """Holds ``output_dir/.lock`` (host and PID) while a run trains into ``output_dir``.

  ``lock_path`` locks one output file instead (``bin/eval --output``); ``flag`` is the flag
  the messages name.
  """

  def __init__(self, output_dir, lock_path=None, flag="--output_dir"):
    self.path = lock_path or os.path.join(output_dir, LOCK_FILE)
    self.flag = flag
    self.held = False

  def __enter__(self):
    if not _is_chief():
      return self
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        owner = self._owner()
        if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and \
            not _pid_alive(owner["pid"]):
          logging.warning("removing stale lock %s of process %d, which no longer runs",
                          self.path, owner["pid"])
          os.remove(self.path)
          continue
        raise ValueError(
            f"{self.flag.lstrip('-')} is in use: lock file {self.path!r} is held by process "
            f"{owner.get('pid', '?')} on host {owner.get('host', '?')}. Wait for it to finish "
            f"or use another {self.flag}; if that process is gone, delete the lock file.")
      except OSError as error:  # read-only, no permission, disk full: before any work
        raise ValueError(f"cannot write the lock file {self.path!r} ({error.strerror}): "
                         f"{self.flag} must be writable; nothing was done") from error
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self.held = True
      return self
    raise ValueError(f"cannot take lock file {self.path!r}")

  def _owner(self):
    try:
      with open(self.path) as f:
        owner = json.load(f)
      return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
      return {}

  def __exit__(self, *exc):
    if self.held:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
      self.held = False


def holds_output_lock(train_fn):
  """Wraps ``train_fn(output_dir, ...)``: holds the lock; ``restart=True`` clears the dir first."""
  @functools.wraps(train_fn)
  def locked(output_dir, *args, restart=False, **kwargs):
    try:
      tf.io.gfile.makedirs(output_dir)
    except tf.errors.OpError as error:
      raise ValueError(f"cannot create --output_dir {output_dir!r}: {error.message}") from error
    with OutputLock(output_dir) as lock:
      if restart:
        clear_run(output_dir)
      if lock.held:
        remove_interrupted_checkpoint_writes(output_dir)
      return train_fn(output_dir, *args, **kwargs)
  return locked


def remove_interrupted_checkpoint_writes(output_dir):
  """Removes the ``checkpoints/ckpt-N_temp/`` folders of checkpoint writes that were killed.

  TensorFlow writes a checkpoint into ``ckpt-N_temp/`` and then renames its files into place; a
  kill in between leaves the folder, which nothing reads or removes. Called while the lock is
  held, so no other process is writing one.
  """
  pattern = os.path.join(output_dir, CHECKPOINT_DIR, "ckpt-*_temp")
  for path in sorted(tf.io.gfile.glob(pattern)):
    if re.fullmatch(r"ckpt-\d+_temp", os.path.basename(path)) and tf.io.gfile.isdir(path):
      logging.warning("removing %s, left by a checkpoint write that was interrupted", path)
      tf.io.gfile.rmtree(path)


def recorded_config():
  """The gin bindings that determine what is trained, as text."""
  return "".join(line + "\n" for line in gin.config_str().splitlines()
                 if not line.startswith(UNRECORDED_BINDINGS))


def _has_checkpoints(output_dir):
  return tf.train.latest_checkpoint(os.path.join(output_dir, CHECKPOINT_DIR)) is not None or \
      bool(tf.io.gfile.glob(os.path.join(output_dir, CHECKPOINT_DIR, "ckpt-*.index")))


def check_config(output_dir):
  """Records the config of a new run; refuses to resume checkpoints of a different config."""
  directory = os.path.join(output_dir, CHECKPOINT_DIR)
  path = os.path.join(directory, CONFIG_FILE)
  config = recorded_config()
  if not _has_checkpoints(output_dir):
    if _is_chief():
      tf.io.gfile.makedirs(directory)
      files.write_text(path, config)
    return
  if not tf.io.gfile.exists(path):
    raise ValueError(
        f"output_dir {output_dir!r} holds checkpoints but no record of their config "
        f"({path}); cannot tell whether they match this run. Use --restart to discard them "
        "and start over, or another --output_dir.")
  with tf.io.gfile.GFile(path) as f:
    stored = f.read()
  if stored != config and _same_after_renaming(stored, config):
    # Recorded by a tfbet before the training parts were configured on themselves
    # (gin_utils.RENAMED_BINDINGS): the same config; the record is rewritten in today's names.
    logging.info("the checkpoints' config record uses bindings of an older tfbet; it is the "
                 "same config in today's names, so the run resumes (%s rewritten)", path)
    if _is_chief():
      files.write_text(path, config)
    return
  if stored != config:
    diff = list(difflib.unified_diff(stored.splitlines(), config.splitlines(),
                                     "checkpoints", "this run", lineterm="", n=0))
    shown = "\n".join(line for line in diff if not line.startswith("@@"))
    raise ValueError(
        f"output_dir {output_dir!r} holds checkpoints trained with a different config "
        f"({path}):\n{shown}\nResuming would mix the two. Use --restart to discard the "
        "checkpoints and start over, or another --output_dir.")


def _same_after_renaming(stored, config):
  """Whether ``stored``, with old bindings in their new form, binds exactly what ``config`` does."""
  migrated = gin_utils.config_bindings(
      "\n".join(gin_utils.migrate_bindings(stored.splitlines())))
  return migrated is not None and migrated == gin_utils.config_bindings(config)


def clear_run(output_dir):
  """Removes what an earlier run wrote into ``output_dir`` (``bin/train --restart``)."""
  for name in RUN_OUTPUTS:
    path = os.path.join(output_dir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)


def restore_newest_intact(checkpoint, manager):
  """Restores the newest checkpoint that reads back completely; returns its path or None.

  A damaged checkpoint is skipped with a warning naming it; if none reads back, the error names
  every file tried (starting over silently would lose the run).
  """
  failures = []
  for path in _checkpoints_newest_first(manager):
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, IndexError, AssertionError, KeyError, OSError) as e:
      logging.warning("checkpoint %s is damaged (%s: %s); trying the one before it", path,
                      type(e).__name__, str(e)[:200])
      failures.append(f"{path}: {type(e).__name__}: {str(e)[:200]}")
      continue
    if failures:
      logging.warning("resuming from %s, the newest intact checkpoint", path)
    return path
  if failures:
    raise ValueError("no checkpoint reads back:\n" + "\n".join(failures) +
                     "\nUse --restart to discard them and start over.")
  return None


def _checkpoints_newest_first(manager):
  """The manager's checkpoints and any complete one it has not recorded yet.

  A checkpoint's index is written after its data, and the manager's state file after the
  index: a kill in between leaves a complete checkpoint the state file does not list.
  """
  def number(path):
    match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(path))
    return int(match.group(1)) if match else -1

  on_disk = [path[:-len(".index")] for path in
             tf.io.gfile.glob(os.path.join(manager.directory, "ckpt-*.index"))]
  paths = {os.path.normpath(p) for p in list(manager.checkpoints) + on_disk}
  return sorted(paths, key=number, reverse=True)


class Progress(keras.callbacks.Callback):
  """History and training seconds of all epochs so far, saved with every checkpoint.

  Add it to the callbacks *before* the checkpoint callback: it records the epoch's metrics and
  time, and the checkpoint callback calls ``save`` just before it writes the checkpoint (a
  record ahead of the checkpoint restored is cut back on resume). When the record of earlier
  epochs is lost (missing, damaged or short), the run's history and time are unknown, not 0:
  ``whole_history`` and ``seconds`` are None, and the record says from which epoch it counts.
  """

  def __init__(self, output_dir, epochs_done):
    super().__init__()
    self.path = os.path.join(output_dir, CHECKPOINT_DIR, PROGRESS_FILE)
    self.history, self.seconds_per_epoch = {}, []
    self.first_epoch = 0  # The epoch the record starts at: > 0 when earlier ones were lost.
    if epochs_done:
      try:
        self._load(epochs_done)
      except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logging.warning("progress record %s is damaged (%s)", self.path, e)
        self.history, self.seconds_per_epoch, self.first_epoch = {}, [], 0
      recorded = self.first_epoch + len(self.seconds_per_epoch)
      if recorded < epochs_done:
        logging.warning("%s records %d of the %d epochs done; result.json will say that the "
                        "history and training time of the run are unknown", self.path,
                        len(self.seconds_per_epoch), epochs_done)
        self.history, self.seconds_per_epoch, self.first_epoch = {}, [], epochs_done
    self._started = None

  def _load(self, epochs_done):
    """Reads the record of the epochs before ``epochs_done`` (those of the checkpoint restored,
    an older one if the newest was damaged)."""
    if not tf.io.gfile.exists(self.path):
      return
    with tf.io.gfile.GFile(self.path) as f:
      saved = json.load(f)
    first = checks.integer(saved.get("first_epoch", 0), "first_epoch", 0, epochs_done)
    keep = epochs_done - first
    self.history = {str(key): [float(v) for v in values[:keep]]
                    for key, values in saved["history"].items()}
    self.seconds_per_epoch = [checks.real(v, "seconds_per_epoch", 0)
                              for v in saved["seconds_per_epoch"][:keep]]
    self.first_epoch = first

  @property
  def seconds(self):
    """Training time of all completed epochs (an epoch cut short by a kill is not counted);
    None when the time of earlier epochs is unknown."""
    return sum(self.seconds_per_epoch) if self.first_epoch == 0 else None

  def whole_history(self):
    """{metric: [value per epoch]} of every epoch of the run; None when earlier ones are lost."""
    return self.history if self.first_epoch == 0 else None

  def on_epoch_begin(self, epoch, logs=None):
    self._started = time.time()

  def on_epoch_end(self, epoch, logs=None):
    for key, value in (logs or {}).items():
      self.history.setdefault(key, []).append(float(value))
    self.seconds_per_epoch.append(time.time() - self._started)

  def save(self):
    if _is_chief():
      files.write_text(self.path, json.dumps(
          {"history": self.history, "seconds_per_epoch": self.seconds_per_epoch,
           "first_epoch": self.first_epoch}))
