"""Timing helpers shared by the benchmark scripts (not part of the library)."""
import os
import statistics
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_seconds(fn, repeats, warmup=2):
  """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def interleaved_medians(fns, repeats, warmup=2, cpu=False):
  """Median times of several callables measured round-robin, so load changes hit all alike.

  With cpu=True returns (wall, cpu): the median process CPU time (all threads) too, which other
  programs' load on a shared machine disturbs far less than the wall time.
  """
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times = {name: [] for name in fns}
  cpu_times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start, start_cpu = time.perf_counter(), time.process_time()
      fn()
      times[name].append(time.perf_counter() - start)
      cpu_times[name].append(time.process_time() - start_cpu)
  wall = {name: statistics.median(t) for name, t in times.items()}
  if cpu:
    return wall, {name: statistics.median(t) for name, t in cpu_times.items()}
  return wall


def random_mnist_batch(batch, seed=0):
  """A fixed batch of MNIST-shaped inputs and labels (timing does not depend on the values)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  return (tf.constant(rng.normal(size=(batch, 28, 28, 1)).astype(np.float32)),
          tf.constant(rng.integers(0, 10, size=batch)))
