"""The thread budget: cores shared among workers, applied before TensorFlow starts, else refused."""
import os
import subprocess
import sys

import pytest

from tfbet import threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_workers_share_the_cores_and_each_gets_at_least_one_thread():
  assert threads.share(2, cores=2) == 1
  assert threads.share(2, cores=16) == 8
  assert threads.share(3, cores=16) == 5
  assert threads.share(4, cores=2) == 1
  assert threads.share(1) == len(os.sched_getaffinity(0))


def test_budgets_outside_one_to_1024_and_non_integers_are_refused_naming_the_argument():
  with pytest.raises(ValueError, match=r"worker_threads must be in \[1, 1024\], got 0"):
    threads.check(0)
  with pytest.raises(ValueError, match=r"worker_threads must be in \[1, 1024\], got 4096"):
    threads.limit(4096)
  with pytest.raises(TypeError, match="worker_threads must be an integer"):
    threads.check(True)
  with pytest.raises(TypeError, match="num_workers must be an integer"):
    threads.share(1.5)


def test_a_budget_set_before_the_first_op_is_what_tensorflow_runs_with():
  script = (
      "import tensorflow as tf\n"
      "from tfbet import threads\n"
      "threads.limit(1)\n"
      "tf.reduce_sum(tf.ones(4)).numpy()\n"
      "print(tf.config.threading.get_intra_op_parallelism_threads(),"
      " tf.config.threading.get_inter_op_parallelism_threads(), threads.current())\n"
      "try:\n"
      "  threads.limit(2)\n"
      "except RuntimeError as error:\n"
      "  print(error)\n")
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120, check=True)
  lines = process.stdout.splitlines()
  assert lines[0] == "1 1 1"
  assert lines[1].startswith("worker_threads=2 cannot be applied: TensorFlow already runs")
