"""The thread budget of one process: TensorFlow's intra- and inter-op threads.

By default TensorFlow runs every process with as many threads as the machine has cores, so
several evaluation workers on one machine fight over the same cores. A budget fixes both
thread pools of a process to ``threads``; TensorFlow reads them once, when it runs its first op,
so a budget is set before that (``limit``), and a process that already runs with another budget
is an error, never silently kept (docs/design.md §3 Arguments).
"""
import os

from tfbet import checks

# One process never gets more threads than this (a typo such as 10**6 is refused, not created).
MAX_THREADS = 1024


def available_cores():
  """The cores this process may run on (its CPU affinity, else the machine's count)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def check(threads, name="worker_threads"):
  """``threads`` as an int in [1, MAX_THREADS]; TypeError / ValueError naming ``name``."""
  return checks.integer(threads, name, minimum=1, maximum=MAX_THREADS)


def share(num_workers, cores=None):
  """Threads per worker when ``num_workers`` processes share ``cores`` (default: this
  machine's): the cores divided among them, at least 1."""
  num_workers = checks.integer(num_workers, "num_workers", minimum=1)
  cores = available_cores() if cores is None else checks.integer(cores, "cores", minimum=1)
  return max(1, cores // num_workers)


def current():
  """The intra-op threads TensorFlow uses in this process (its default: every core)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.config.threading.get_intra_op_parallelism_threads() or available_cores()


def limit(threads, name="worker_threads"):
  """Runs TensorFlow in this process with ``threads`` intra- and inter-op threads.

  Must come before TensorFlow runs its first op here; afterwards only the budget already in
  force is accepted (RuntimeError otherwise). Returns ``threads``.
  """
  threads = check(threads, name)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  settings = (tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
  if settings == (threads, threads):
    return threads
  try:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
  except RuntimeError as error:
    raise RuntimeError(
        f"{name}={threads} cannot be applied: TensorFlow already runs in this process (pid "
        f"{os.getpid()}) with {settings[0] or 'default'} intra-op and {settings[1] or 'default'}"
        " inter-op threads; set the budget before TensorFlow runs its first op") from error
  return threads
