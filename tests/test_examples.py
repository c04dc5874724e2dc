"""The examples run end to end in their --tiny setting and report what they measured."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_example(name):
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  process = subprocess.run([sys.executable, os.path.join(REPO, "examples", name), "--tiny"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
  assert process.returncode == 0, process.stdout + process.stderr
  return process.stdout


@pytest.mark.parametrize("name,faulty", [
    # MobileNetV2: everything but the BatchNormalization moving statistics.
    ("robustify_keras_model.py", "408938 of 423018 parameters (96.67 %) in faulty memory"),
    ("post_training_eval.py", "100.00 %) in faulty memory"),
])
def test_example_runs_tiny_and_reports_coverage_and_rerr(name, faulty, real_mnist):  # pylint: disable=unused-argument
  output = _run_example(name)
  assert faulty in output
  assert re.search(r"clean Err \d+\.\d\d %", output)
  for rate in ("0.1", "1"):
    assert re.search(rf"p = {rate} %: RErr \d+\.\d\d % \(\+- \d+\.\d\d, 2 chips\)", output)
