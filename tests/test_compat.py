"""tfbet needs Keras 2 (tf-keras): Keras 3 already in use fails at import, saying how to fix it."""
import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, legacy=None):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  if legacy is not None:
    env["TF_USE_LEGACY_KERAS"] = legacy
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300, check=False)


def test_tf_keras_resolved_to_keras_3_before_import_fails_naming_the_fix():
  process = _python("import tensorflow as tf; tf.keras.layers; import tfbet")
  assert process.returncode != 0
  assert "ImportError: tfbet needs Keras 2" in process.stderr
  assert "set the environment variable TF_USE_LEGACY_KERAS=1 before" in process.stderr


def test_a_keras_3_setting_of_the_variable_fails_at_import():
  process = _python("import tfbet", legacy="0")
  assert process.returncode != 0
  assert "TF_USE_LEGACY_KERAS='0' selects Keras 3" in process.stderr


@pytest.mark.parametrize("code,warns", [
    ("import tfbet, tensorflow as tf; print(tf.keras.layers.Dense.__module__)", False),
    ("import tensorflow as tf, tfbet; print(tf.keras.layers.Dense.__module__)", True),
])
def test_tf_keras_is_tf_keras_after_import_and_a_late_switch_is_announced(code, warns):
  process = _python(code)
  assert process.returncode == 0, process.stderr
  assert process.stdout.startswith("tf_keras.")
  assert ("tfbet set TF_USE_LEGACY_KERAS=1 after TensorFlow was imported" in process.stderr
          ) == warns


def test_quantizing_a_keras_3_model_says_how_to_fix_it():
  process = _python("import keras, tfbet\n"
                    "tfbet.quantize_model(keras.Sequential([keras.Input((2,)), "
                    "keras.layers.Dense(2)]))", legacy="1")
  assert process.returncode != 0
  assert "Keras 3 models cannot be quantized" in process.stderr
  assert "from tfbet.compat import keras" in process.stderr


def test_private_keras_and_tfmot_modules_are_imported_in_compat_only():
  private = ("tf_keras.src", "tf_keras.python", "tensorflow_model_optimization.python",
             "keras.src", "tensorflow.python.keras")
  importers = set()
  for path in sorted(pathlib.Path(ROOT, "tfbet").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
               [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      if any(name.startswith(private) for name in names):
        importers.add(path.relative_to(ROOT).as_posix())
  assert importers == {"tfbet/compat.py"}
