"""Distributed training: MirroredStrategy on two logical CPU devices, and MultiWorkerMirroredStrategy
with two ``bin/train`` worker processes on loopback addresses (``TF_CONFIG``)."""
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tfbet.cli import training_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 420  # seconds for one launch of the workers; they are killed after it

SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfbet.cli import gin_utils, training_job
    gin_utils.parse(["experiments/cpu/tiny.gin"], [
        "train.epochs = 1", "train.distribute = 'mirrored'", "train.verbose = 0",
        "load_data.train_limit = 256"])
    result = training_job.train(sys.argv[1])
    strategy_devices = len(tf.config.list_logical_devices("CPU"))
    print(json.dumps({"devices": strategy_devices, "error": result["test_error"],
                      "injecting": result["history"]["injecting"][-1]}))
""")


def test_mirrored_strategy_with_two_logical_devices_trains_one_epoch(tmp_path, real_mnist):  # pylint: disable=unused-argument
  result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, check=False)
  assert result.returncode == 0, result.stderr[-4000:]
  summary = result.stdout.strip().splitlines()[-1]
  assert '"devices": 2' in summary
  assert '"injecting": 1.0' in summary  # the perturbed pass ran on both replicas
  assert os.path.exists(tmp_path / "model.h5")


# -- two worker processes -------------------------------------------------------------------------

# The tiny job (RANDBET at p = 5 %, errors from the first step) on 256 images: 4 steps of a
# global batch of 64 per epoch.
TINY = ["--gin_file=experiments/cpu/tiny.gin", "--gin_param=load_data.train_limit = 256",
        "--gin_param=train.verbose = 2"]
MULTI_WORKER = "--gin_param=train.distribute = 'multi_worker'"
# Float tolerance on the final weights of the two-worker run against the single-process run.
# The two runs compute the same function of the same data: each worker computes the gradient of
# its half of every global batch and the halves are summed (all-reduce), where the single
# process sums the whole batch in one reduction. Float32 addition is not associative, so the
# gradients differ by a few ulps (~1e-7 relative), and SGD accumulates that over the steps.
# A weight whose quantized code sits exactly at a rounding boundary may also round the other
# way, which changes the forward pass by one quantization step of that weight. Measured: 1e-6
# after 4 RANDBET steps. Weight clipping at the tiny job's w_max = 0.05 with lr 0.05 makes
# training chaotic (with GroupNorm the effective step is large against weights of 0.05): the same
# ulps grow ~30x per step (1e-3 after 4 steps), so the clipped runs below are compared after 2
# steps (measured: 4e-5). 1e-4 is two orders of magnitude below one step's update (lr 0.05 times
# the gradient), so a worker that trains on the wrong share of the batch, counts the weight decay
# twice or meets other bit errors fails the test.
WEIGHT_ATOL = 1e-4


def _free_ports(count):
  """Ports that are free right now on 127.0.0.1 (all held open together, so they differ)."""
  with contextlib.ExitStack() as stack:
    sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]


def _train(output_dir, extra, log_path, tf_config=None):
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  with open(log_path, "w") as log:
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "bin", "train"), *TINY, *extra,
         f"--output_dir={output_dir}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


class Cluster:
  """Worker processes of one bin/train job on loopback addresses; always killed on exit."""

  def __init__(self, tmp_path, output_dir, extra, num_workers=2):
    self.tmp_path = tmp_path
    self.output_dir = output_dir
    self.extra = [MULTI_WORKER, *extra]
    self.num_workers = num_workers
    self.processes = []
    self.logs = []

  def start(self, attempt):
    ports = _free_ports(self.num_workers)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    self.addresses = cluster["worker"]
    self.logs = [self.tmp_path / f"worker{i}.{attempt}.log" for i in range(self.num_workers)]
    self.processes = [
        _train(self.output_dir, self.extra, log,
               {"cluster": cluster, "task": {"type": "worker", "index": i}})
        for i, log in enumerate(self.logs)]
    return self

  def kill(self):
    for process in self.processes:
      if process.poll() is None:
        process.send_signal(signal.SIGKILL)
      process.wait()

  def wait(self, timeout=TIMEOUT):
    """Waits for every worker; kills them all if one fails or time runs out."""
    deadline = time.time() + timeout
    try:
      while any(p.poll() is None for p in self.processes):
        if any(p.poll() not in (None, 0) for p in self.processes) or time.time() > deadline:
          break
        time.sleep(0.2)
    finally:
      self.kill()
    codes = [p.returncode for p in self.processes]
    assert codes == [0] * self.num_workers, f"worker exit codes {codes}\n" + self.tail()
    return [log.read_text() for log in self.logs]

  def tail(self, chars=3000):
    return "\n".join(f"--- {log.name}:\n{log.read_text()[-chars:]}" for log in self.logs
                     if log.exists())


def _weights(output_dir):
  return training_job.load_model(os.path.join(output_dir, training_job.MODEL_FILE)).get_weights()


def _result(output_dir):
  with open(os.path.join(output_dir, "result.json")) as f:
    return json.load(f)


def _assert_same_training(multi_dir, single_dir):
  """Final weights within WEIGHT_ATOL (float) or equal (integer state); same test error."""
  multi, single = _weights(multi_dir), _weights(single_dir)
  assert [w.shape for w in multi] == [w.shape for w in single]
  floats = [(m, s) for m, s in zip(multi, single) if m.dtype.kind == "f"]
  assert floats
  for m, s in zip(multi, single):
    if m.dtype.kind == "f":
      np.testing.assert_allclose(m, s, rtol=0, atol=WEIGHT_ATOL)
    else:
      np.testing.assert_array_equal(m, s)
  multi_result, single_result = _result(multi_dir), _result(single_dir)
  assert abs(multi_result["test_error"] - single_result["test_error"]) <= 1 / 256 + 1e-9
  for key in ("loss", "error", "val_error"):  # a resumed run reports the epochs it ran
    multi_history = multi_result["history"][key]
    assert multi_history
    np.testing.assert_allclose(multi_history, single_result["history"][key][-len(multi_history):],
                               atol=2e-3, err_msg=key)


def _finish(process, log_path):
  try:
    process.wait(timeout=TIMEOUT)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  assert process.returncode == 0, log_path.read_text()[-3000:]


def lost_peer_line(addresses, command):
  return (f"lost worker 1 ({addresses[1]}) of the multi-worker cluster (UnavailableError), so "
          f"worker 0 ({addresses[0]}) stops too. The checkpoints of the finished epochs are kept "
          "in --output_dir: start every worker again with its own TF_CONFIG and the same command "
          f"to resume from the last one: {command}")


# What the chief's collective raised when worker 1 was killed (TensorFlow 2.x, two workers).
PEER_GONE = (
    "{{function_node __wrapped__CollectiveReduceV2_Nordering_token_1_device_/job:worker/"
    "replica:0/task:0/device:CPU:0}} Collective ops is aborted by: Error reported from "
    "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
    "/job:worker/replica:0/task:1\nThe tasks have crashed. Check the task logs for an earlier "
    "error, or scheduler events (e.g. preemption, eviction) to debug further.\nThe error could "
    "be from a previous operation. Restart your program to reset. [Op:CollectiveReduceV2] name: ")


def _tf_config(index, addresses):
  return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def test_a_lost_peer_is_one_line_naming_it_and_the_command_that_resumes():
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  addresses = ["10.0.0.1:12345", "10.0.0.2:12345"]
  error = tf.errors.UnavailableError(None, None, PEER_GONE)
  command = "bin/train --gin_file=a.gin --output_dir=/shared/run"
  assert training_job.lost_peer_message(error, command, _tf_config(0, addresses)) == \
      lost_peer_line(addresses, command)
  # gin re-raises the error of a configurable as a subclass of its type, with a longer text.
  @gin.configurable
  def collective():
    raise error
  try:
    collective()
  except tf.errors.UnavailableError as wrapped:
    assert type(wrapped) is not tf.errors.UnavailableError
    assert training_job.lost_peer_message(wrapped, command, _tf_config(0, addresses)) == \
        lost_peer_line(addresses, command)
  # The chief lost: worker 1 names it. A text naming no task names every other worker.
  message = training_job.lost_peer_message(
      tf.errors.UnavailableError(None, None, PEER_GONE.replace("task:1", "task:0")), command,
      _tf_config(1, addresses))
  assert message.startswith("lost worker 0 (10.0.0.1:12345) of the multi-worker cluster "
                            "(UnavailableError), so worker 1 (10.0.0.2:12345) stops too.")
  message = training_job.lost_peer_message(tf.errors.DeadlineExceededError(None, None, "timed out"),
                                        command, _tf_config(0, addresses + ["10.0.0.3:1"]))
  assert message.startswith("lost a peer (one of worker 1 (10.0.0.2:12345), worker 2 "
                            "(10.0.0.3:1)) of the multi-worker cluster (DeadlineExceededError)")
  # Not a lost peer: other errors, or no cluster.
  assert training_job.lost_peer_message(ValueError(PEER_GONE), command, _tf_config(0, addresses)) \
      is None
  assert training_job.lost_peer_message(error, command, "{}") is None
  assert training_job.lost_peer_message(error, command, "not json") is None


def test_two_workers_killed_and_resumed_match_a_single_process_run(tmp_path, real_mnist):  # pylint: disable=unused-argument
  epochs = ["--gin_param=train.epochs = 3", "--gin_param=train.weight_constraint = None",
            "--gin_param=WeightClip.w_max = None"]
  single_dir = str(tmp_path / "single")
  single = _train(single_dir, epochs, tmp_path / "single.log")
  multi_dir = str(tmp_path / "multi")
  cluster = Cluster(tmp_path, multi_dir, epochs)
  try:
    cluster.start(attempt=0)
    state = os.path.join(multi_dir, "checkpoints", "checkpoint")  # written after ckpt-1 itself
    deadline = time.time() + TIMEOUT
    while not (os.path.exists(state) and "ckpt-1" in open(state).read()):
      assert all(p.poll() is None for p in cluster.processes), cluster.tail()
      assert time.time() < deadline, "no checkpoint written\n" + cluster.tail()
      time.sleep(0.02)
    cluster.processes[1].send_signal(signal.SIGKILL)  # A lost machine; the chief must notice.
    chief = cluster.processes[0]
    chief.wait(timeout=TIMEOUT)
  finally:
    cluster.kill()
  assert not os.path.exists(os.path.join(multi_dir, "result.json")), "killed too late"
  chief_log = cluster.logs[0].read_text()
  assert chief.returncode == 1 and "Traceback" not in chief_log, chief_log[-3000:]
  command = shlex.join([os.path.join(ROOT, "bin", "train"), *TINY, *cluster.extra,
                        f"--output_dir={multi_dir}"])
  assert chief_log.strip().splitlines()[-1] == lost_peer_line(cluster.addresses, command)
  logs = cluster.start(attempt=1).wait()
  for log in logs:
    assert "resumed from" in log and "ckpt-1 (epoch 1)" in log
  _finish(single, tmp_path / "single.log")

  # The chief (worker 0) wrote the real files; worker 1 removed its temporary ones.
  assert sorted(os.listdir(multi_dir)) == sorted(os.listdir(single_dir))
  _assert_same_training(multi_dir, single_dir)

  # The exported model evaluates, and bin/eval's clean error is the one the run reported.
  eval_json = tmp_path / "eval.json"
  evaluated = subprocess.run(
      [sys.executable, os.path.join(ROOT, "bin", "eval"), f"--run_dir={multi_dir}",
       "--rates=1", "--num_chips=2", f"--output={eval_json}"],
      cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  with open(eval_json) as f:
    record = json.load(f)
  assert record["clean_errors"] / record["data"]["n"] == pytest.approx(_result(multi_dir)["test_error"])


@pytest.mark.parametrize("method", ["pattbet", "curricular"])
def test_two_workers_train_a_clipped_method_like_a_single_process(tmp_path, method, real_mnist):  # pylint: disable=unused-argument
  # PATTBET holds its fixed pattern in per-replica byte variables of its own; curricular raises
  # its rate over training (a schedule every worker must follow in step).
  extra = [f"--gin_file=methods/{method}.gin", "--gin_param=train.weight_constraint = @WeightClip()",
           "--gin_param=WeightClip.w_max = 0.05",
           "--gin_param=train.epochs = 1", "--gin_param=load_data.train_limit = 128"]
  single = _train(str(tmp_path / "single"), extra, tmp_path / "single.log")
  Cluster(tmp_path, str(tmp_path / "multi"), extra).start(attempt=0).wait()
  _finish(single, tmp_path / "single.log")
  _assert_same_training(str(tmp_path / "multi"), str(tmp_path / "single"))
  if method == "pattbet":  # Curricular starts its rate schedule at 0: nothing injected yet.
    assert _result(str(tmp_path / "multi"))["history"]["injecting"] == [1.0]
