"""A run directory is read as data: its gin config never imports foreign code, its model never runs."""
import os
import subprocess
import sys

import pytest

from tfbet.cli import gin_utils
from tfbet.cli import run_dir
from tfbet.compat import keras

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(tmp_path, content, name="operative_config.gin"):
  path = tmp_path / name
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  return str(path)


def test_an_operative_config_of_bindings_passes(tmp_path):
  path = _write(tmp_path, "train.epochs = 3\nload_data.name = 'mnist'\n"
                          "get_model.name = @simplenet\nimport tfbet.models\n")
  assert run_dir.check_gin_file(path, trusted=False) == path


@pytest.mark.parametrize("line, message", [
    ("import os", r"line 2: refusing `import os`"),
    ("from subprocess import call", "refusing `from subprocess import call`"),
    ("import tfbetx.evil", "refusing `import tfbetx.evil`"),
    ("include '/etc/passwd'", "refusing `include '/etc/passwd'`"),
])
def test_imports_of_foreign_modules_and_includes_are_refused_in_a_run_directory(
    tmp_path, line, message):
  path = _write(tmp_path, f"train.epochs = 3\n{line}\n")
  with pytest.raises(ValueError, match=message):
    run_dir.check_gin_file(path, trusted=False)
  run_dir.check_gin_file(path, trusted=True)  # The user's own files may import.


@pytest.mark.parametrize("content, message", [
    (b"\x89HDF\r\n\x1a\n\0\0binary", "binary content"),
    (b"train.epochs = 3\n\xff\xfe\n", "not UTF-8 text"),
    ("train.epochs = = 3\n", "syntax error"),
    ("train.epochs = (3,\n", "syntax error"),
])
def test_binary_undecodable_and_malformed_configs_fail_naming_the_file(
    tmp_path, content, message):
  path = _write(tmp_path, content, name="broken.gin")
  with pytest.raises(ValueError, match=f"broken.gin.*{message}|{message}.*broken.gin"):
    run_dir.check_gin_file(path)
  with pytest.raises(ValueError, match="broken.gin"):
    gin_utils.parse([path], finalize=False)


def test_a_huge_config_is_refused_before_it_is_read(tmp_path, monkeypatch):
  monkeypatch.setattr(run_dir, "MAX_GIN_BYTES", 10)
  path = _write(tmp_path, "train.epochs = 3\n")
  with pytest.raises(ValueError, match="more than the limit of 10"):
    run_dir.check_gin_file(path)


def _eval(*args):
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO, "bin", args[0]), *args[1:]],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_bin_eval_and_eval_chips_refuse_a_run_directory_whose_model_runs_code(tmp_path):
  marker = tmp_path / "marker"
  touch = eval(f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() or x")  # noqa
  inputs = keras.Input((4,))
  keras.Model(inputs, keras.layers.Lambda(touch, name="payload")(inputs)).save(
      str(tmp_path / "model.h5"))
  marker.unlink()  # Building the model in this process ran the payload once.
  (tmp_path / "operative_config.gin").write_text("load_data.name = 'mnist'\n")
  process = _eval("eval", f"--run_dir={tmp_path}", "--num_chips=1", "--rates=1")
  assert process.returncode != 0
  assert "model.h5" in process.stderr and "'payload'" in process.stderr, process.stderr
  process = _eval("eval_chips", f"--model={tmp_path / 'model.h5'}",
                  "--gin_param=load_data.name = 'mnist'", "--chip_files=missing.npz")
  assert process.returncode != 0
  assert not marker.exists()


def test_bin_eval_refuses_a_run_directory_whose_config_imports_a_module(tmp_path):
  (tmp_path / "model.h5").write_bytes(b"")
  (tmp_path / "operative_config.gin").write_text("import antigravity\n")
  process = _eval("eval", f"--run_dir={tmp_path}", "--num_chips=1", "--rates=1")
  assert process.returncode != 0
  assert "refusing `import antigravity`" in process.stderr, process.stderr
