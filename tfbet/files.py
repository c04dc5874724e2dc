"""Atomic file writes: a reader finds the old file or the new one, never half of one.

Every output of the binaries (results, tables, models, memory images, plots, reports) is
written through :func:`atomic_path` / :func:`atomic_open`: the content goes to a temporary file
next to the target, which is renamed onto the target only once it is complete. A process killed
mid-write leaves the previous file intact (and at most a ``*.tmp-<pid>*`` file next to it).
"""
import contextlib
import errno
import json
import os
import sys

from tfbet import lazy_modules

tf = lazy_modules.module("tensorflow")  # only for remote paths (gs://...): local files use os


def tensorflow_errors():
  """TensorFlow's file errors as a tuple for ``except``; empty while TensorFlow is not loaded
  (then none can be raised), so catching them does not import it."""
  tf_module = sys.modules.get("tensorflow")
  return (tf_module.errors.OpError,) if tf_module is not None else ()


def _is_local(path):
  return "://" not in path


def _sync(path):
  """Flushes a local file's content to disk, so the rename never publishes an empty file."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path next to ``path`` (same suffix, for writers that infer the format).

  When the block ends without an exception the temporary file replaces ``path`` in one rename;
  otherwise it is removed and ``path`` is left as it was.
  """
  path = os.fspath(path)
  root, ext = os.path.splitext(path)
  temporary = f"{root}.tmp-{os.getpid()}{ext}"
  try:
    yield temporary
    if _is_local(temporary):
      _sync(temporary)
      os.replace(temporary, path)
    else:
      tf.io.gfile.rename(temporary, path, overwrite=True)
  except BaseException:
    if _is_local(temporary):
      if os.path.exists(temporary):
        os.remove(temporary)
    elif tf.io.gfile.exists(temporary):
      tf.io.gfile.remove(temporary)
    raise


@contextlib.contextmanager
def atomic_open(path, mode="w"):
  """``open`` for writing (mode "w" or "wb") that replaces ``path`` only once the block succeeds."""
  if mode not in ("w", "wb"):
    raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
  with atomic_path(path) as temporary:
    if _is_local(temporary):  # A real file: seekable, as zip writers (np.savez) need.
      with open(temporary, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
        yield f
    else:
      with tf.io.gfile.GFile(temporary, mode) as f:
        yield f


def write_text(path, text):
  """Writes ``text`` to ``path`` atomically; returns ``path``."""
  with atomic_open(path, "w") as f:
    f.write(text)
  return path


def write_json(path, value):
  """Writes ``value`` as indented JSON to ``path`` atomically, creating its folder; returns it."""
  path = os.fspath(path)
  if _is_local(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return write_text(path, json.dumps(value, indent=1))


def read_json(path, what="file"):
  """The JSON value in ``path``; ValueError naming ``what`` and ``path`` if it cannot be read."""
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8
    raise ValueError(f"cannot read {what} {os.fspath(path)!r}: {error}") from error


def size(path):
  """The size of the file ``path`` in bytes (local or remote)."""
  path = os.fspath(path)
  return os.path.getsize(path) if _is_local(path) else tf.io.gfile.stat(path).length


def open_text(path):
  """``path`` opened for reading text (local or remote)."""
  path = os.fspath(path)
  return open(path, encoding="utf-8") if _is_local(path) else tf.io.gfile.GFile(path, "r")


def save_figure(figure, path):
  """Writes a matplotlib figure as PNG (100 dpi) to ``path`` atomically; returns ``path``."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with atomic_path(path) as temporary:
    figure.savefig(temporary, format="png", dpi=100)
  return path


# Why a write fails for a reason of the place written to, not of the program: the run can be
# resumed once there is space or permission.
WRITE_FAILURES = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def write_failure(error):
  """(path or None, reason) if ``error`` (or what caused it) is a write that failed because the
  disk is full, the file system read-only or permission lacking; else None.

  Recognizes ``OSError`` by its errno and TensorFlow's file errors (checkpoints, logs), which
  carry only the system's text, by that text.
  """
  chain = []
  while error is not None and all(error is not seen for seen in chain):
    chain.append(error)
    error = error.__cause__ or error.__context__
  for error in chain:  # the original OSError names the path
    if isinstance(error, OSError) and error.errno in WRITE_FAILURES:
      return error.filename, os.strerror(error.errno)
  for error in chain:
    if isinstance(error, (OSError, tf.errors.OpError)):
      for number in WRITE_FAILURES:
        if os.strerror(number) in str(error):
          return getattr(error, "filename", None), os.strerror(number)
  return None


def check_writable(path):
  """Raises ValueError naming ``path`` unless a file can be written there (checked by writing).

  Creates the parent directory. Meant to run before long work, so a bad output path fails at
  once instead of after the work is done.
  """
  path = os.fspath(path)
  local = _is_local(path)
  if os.path.isdir(path) if local else tf.io.gfile.isdir(path):
    raise ValueError(f"output {path!r} is a directory, not a file path")
  directory = os.path.dirname(os.path.abspath(path) if local else path)
  probe = os.path.join(directory, f".{os.path.basename(path)}.write-test-{os.getpid()}")
  try:
    if local:
      os.makedirs(directory, exist_ok=True)
      with open(probe, "w", encoding="utf-8"):
        pass
      os.remove(probe)
    else:
      tf.io.gfile.makedirs(directory)
      with tf.io.gfile.GFile(probe, "w") as f:
        f.write("")
      tf.io.gfile.remove(probe)
  except (OSError, *tensorflow_errors()) as error:
    raise ValueError(f"cannot write output {path!r}: {error}") from error
  return path
