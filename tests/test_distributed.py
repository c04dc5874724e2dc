"""RANDBET training under MirroredStrategy on two logical CPU devices."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfbet.cli import gin_utils, train_lib
    gin_utils.parse(["experiments/cpu/tiny.gin"], [
        "train.epochs = 1", "train.distribute = 'mirrored'", "train.verbose = 0",
        "load_data.train_limit = 256"])
    result = train_lib.train(sys.argv[1])
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
