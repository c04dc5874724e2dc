"""The tensorflow-datasets path, offline: tfds' own download-and-prepare of MNIST with its
download step served from the local IDX files (scripts/tfds_prefill.py), against the local path.
"""
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tfbet import data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFILL = os.path.join(ROOT, "scripts", "tfds_prefill.py")
# A proxy on a closed loopback port: any download attempt fails at once instead of going out.
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
              "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def tfds_mnist(tmp_path_factory, real_mnist):
  """A tfds data_dir whose MNIST was downloaded (from local files) and prepared by tfds."""
  source = os.path.join(real_mnist, "mnist")
  tfds_dir = str(tmp_path_factory.mktemp("tfds"))
  done = subprocess.run([sys.executable, PREFILL, "--name=mnist", f"--source_dir={source}",
                         f"--tfds_data_dir={tfds_dir}"], capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.count("placed ") == 4
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  os.environ.update(NO_NETWORK)
  try:
    tfds.builder("mnist", data_dir=tfds_dir).download_and_prepare()
  finally:
    for key in NO_NETWORK:
      os.environ.pop(key)
  return tfds_dir


def test_tfds_file_order_sorts_positions_like_tfds_own_hasher():
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  for split in ("train", "test"):
    hasher = hashing.Hasher(split)
    expected = sorted(range(1000), key=hasher.hash_key)
    np.testing.assert_array_equal(data.tfds_file_order(1000, split), expected)


def test_tfds_mnist_prepared_offline_gives_the_local_arrays_in_file_order(tfds_mnist, real_mnist):
  local_dir = real_mnist
  for split, limit in (("test", None), ("train", 700)):
    tfds_images, tfds_labels = data.load_arrays("mnist", split, source="tfds", limit=limit,
                                                tfds_data_dir=tfds_mnist)
    images, labels = data.load_arrays("mnist", split, source="local", limit=limit,
                                      data_dir=local_dir)
    assert tfds_images.shape == images.shape == ((10000 if split == "test" else 700), 28, 28, 1)
    np.testing.assert_array_equal(tfds_images, images)
    np.testing.assert_array_equal(tfds_labels, labels)


def test_first_training_batch_is_the_same_through_tfds_and_local_files(tfds_mnist, real_mnist):
  local_dir = real_mnist
  common = dict(name="mnist", batch_size=32, train_limit=512, test_limit=64, seed=3)
  through_tfds = data.load_data(source="tfds", tfds_data_dir=tfds_mnist, **common)
  local = data.load_data(source="local", data_dir=local_dir, **common)
  np.testing.assert_array_equal(through_tfds.whitening[0], local.whitening[0])
  (tfds_x, tfds_y), = through_tfds.train_dataset(0).take(1).as_numpy_iterator()
  (x, y), = local.train_dataset(0).take(1).as_numpy_iterator()
  assert x.shape == (32, 28, 28, 1)
  np.testing.assert_array_equal(tfds_x, x)
  np.testing.assert_array_equal(tfds_y, y)


def _train(output_dir, env):
  command = [sys.executable, os.path.join(ROOT, "bin", "train"),
             "--gin_file=experiments/cpu/tiny.gin", "--gin_param=train.epochs = 1",
             "--gin_param=train.verbose = 0", f"--output_dir={output_dir}"]
  done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                        env={**os.environ, **env})
  assert done.returncode == 0, done.stderr[-3000:]
  with open(os.path.join(output_dir, "result.json")) as f:
    return json.load(f)


def test_bin_train_without_local_data_trains_through_tfds_to_the_same_weights(
    tfds_mnist, tmp_path):
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top
  empty = tmp_path / "no_local_data"
  empty.mkdir()
  through_tfds = _train(tmp_path / "tfds", {data.DATA_DIR_ENV: str(empty),
                                            "TFDS_DATA_DIR": tfds_mnist, **NO_NETWORK})
  local = _train(tmp_path / "local", {})
  assert 0.0 <= through_tfds["test_error"] <= 1.0
  assert through_tfds["test_error"] == local["test_error"]
  digests = [training_job.weights_digest(training_job.load_model(str(tmp_path / run / "model.h5")))
             for run in ("tfds", "local")]
  assert digests[0] == digests[1]


def test_missing_data_without_network_names_the_folder_and_the_environment_variable(
    tmp_path, monkeypatch):
  from tensorflow_datasets.core.download import downloader  # pylint: disable=g-import-not-at-top

  def no_network(*args, **kwargs):
    raise ConnectionError("no network (test)")

  # tfds' own download fails the way it does offline, without its retries and back-off.
  monkeypatch.setattr(downloader._Downloader, "_sync_download", no_network)  # pylint: disable=protected-access
  with pytest.raises(RuntimeError) as raised:
    data.load_arrays("mnist", "test", data_dir=str(tmp_path / "nothing"),
                     tfds_data_dir=str(tmp_path / "tfds"))
  message = str(raised.value)
  assert str(tmp_path / "nothing" / "mnist") in message
  assert data.DATA_DIR_ENV in message and "tfds_prefill.py" in message


def test_prefill_refuses_a_file_whose_content_is_not_the_standard_one(tmp_path, real_mnist):
  source = tmp_path / "mnist"
  source.mkdir()
  real = os.path.join(real_mnist, "mnist")
  for name in os.listdir(real):
    with open(os.path.join(real, name), "rb") as f:
      (source / name).write_bytes(f.read())
  with gzip.open(source / "t10k-labels-idx1-ubyte.gz", "rb") as f:
    labels = bytearray(f.read())
  labels[-1] = (labels[-1] + 1) % 10  # one label changed
  with gzip.open(source / "t10k-labels-idx1-ubyte.gz", "wb") as f:
    f.write(bytes(labels))
  done = subprocess.run([sys.executable, PREFILL, "--name=mnist", f"--source_dir={source}",
                         f"--tfds_data_dir={tmp_path / 'tfds'}"], capture_output=True,
                        text=True, timeout=300, check=False)
  assert done.returncode != 0
  assert "t10k-labels-idx1-ubyte.gz" in done.stderr and "md5" in done.stderr
  assert hashlib.md5(bytes(labels)).hexdigest() in done.stderr


def test_unknown_data_set_names_are_refused_naming_both_kinds_of_source():
  with pytest.raises(ValueError, match="tensorflow-datasets image classification"):
    data.dataset_info("no_such_data_set_anywhere")


def test_offline_tfds_fails_after_few_retries_and_leaves_no_empty_folders(
    tmp_path, monkeypatch, caplog):
  for key, value in NO_NETWORK.items():  # every connection refused, as offline
    monkeypatch.setenv(key, value)
  tfds_dir = tmp_path / "tfds"
  (tfds_dir / "kept").mkdir(parents=True)  # what was there before stays
  caplog.set_level("WARNING", logger="urllib3")
  with pytest.raises(data.DataUnavailableError) as raised:
    data.load_arrays("mnist", "test", data_dir=str(tmp_path / "nothing"),
                     tfds_data_dir=str(tfds_dir))
  retries = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
  # tfds' own budget is 10 retries per file (3.4 minutes of back-off); here 2 per file.
  assert len(retries) <= data.TFDS_DOWNLOAD_RETRIES * 4
  message = str(raised.value)
  assert (f"{tmp_path / 'nothing' / 'mnist'}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
          "[.gz]") in message
  assert sorted(p.name for p in tfds_dir.rglob("*")) == ["kept"]


@pytest.mark.slow
def test_bin_train_without_data_says_where_it_looked_and_fails_in_one_line(tmp_path):
  env = dict(os.environ, TFBET_DATA_DIR=str(tmp_path / "empty"),
             TFDS_DATA_DIR=str(tmp_path / "tfds"), PYTHONPATH=ROOT, **NO_NETWORK)
  done = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "train"),
                         "--gin_file=experiments/cpu/tiny.gin",
                         f"--output_dir={tmp_path / 'run'}"], capture_output=True, text=True,
                        timeout=600, check=False, env=env)
  assert done.returncode == 1 and "Traceback" not in done.stderr
  looked = done.stderr.index("mnist train: no local files (looked for "
                             f"{tmp_path / 'empty' / 'mnist'}/")
  error = done.stderr.index("bin/train: error: could not load 'mnist' train")
  assert looked < error
  # The last line that is not a log line of a download thread still running.
  lines = [l for l in done.stderr.rstrip().splitlines() if not re.match(r"[IWE]\d{4} ", l)]
  assert lines[-1] == (
      "Run `" + os.path.join(ROOT, "bin", "train") + " --help` for the flags and examples.")
  assert not (tmp_path / "run").exists()  # nothing half made
  assert not [p for p in (tmp_path / "tfds").rglob("*") if p.is_dir()]
