"""Tests of tfbet.data: loading the original files or tfds, and the input pipeline."""
import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import gin  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfbet import data  # noqa: E402
from tfbet import formats  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

# md5 of the uncompressed test files and their label histograms (shared/data/README.md;
# MNIST's test set has these class counts, Fashion-MNIST's is balanced).
REAL_TEST_FILES = {
    "mnist": ("2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637",
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ("8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965",
                      [1000] * 10),
}


def _idx_bytes(array):
  """An uncompressed IDX file of a uint8 array, written from the format's definition."""
  return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + (
      array.astype(np.uint8).tobytes())


def _random_images(n, seed, shape=(32, 32, 3)):
  return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", sorted(REAL_TEST_FILES))
def test_real_idx_test_files_load_with_published_md5_and_label_counts(name, real_mnist):
  image_md5, label_md5, counts = REAL_TEST_FILES[name]
  folder = os.path.join(real_mnist, name)
  with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
    raw_images = f.read()
  with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")) as f:
    raw_labels = f.read()
  assert hashlib.md5(raw_images).hexdigest() == image_md5
  assert hashlib.md5(raw_labels).hexdigest() == label_md5

  images, labels = data.load_arrays(name, "test", data_dir=real_mnist, source="local")
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (10000,) and labels.dtype == np.int64
  assert images.tobytes() == raw_images[16:]
  assert labels.tobytes() == np.frombuffer(raw_labels[8:], np.uint8).astype(np.int64).tobytes()
  np.testing.assert_array_equal(np.bincount(labels, minlength=10), counts)


def test_default_data_dir_is_shared_data_next_to_the_repository_unless_overridden(monkeypatch):
  monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
  assert data.default_data_dir() == os.path.normpath(SHARED_DATA)
  monkeypatch.setenv(data.DATA_DIR_ENV, "/some/where")
  assert data.default_data_dir() == "/some/where"


def test_uncompressed_idx_files_and_limit(tmp_path):
  images = _random_images(7, 0, (28, 28))
  labels = np.arange(7, dtype=np.uint8) % 10
  folder = tmp_path / "fashion_mnist"
  folder.mkdir()
  (folder / "train-images-idx3-ubyte").write_bytes(_idx_bytes(images))
  (folder / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))
  got_images, got_labels = data.load_arrays("fashion_mnist", "train", data_dir=str(tmp_path),
                                            limit=5)
  np.testing.assert_array_equal(got_images, images[:5, ..., None])
  np.testing.assert_array_equal(got_labels, labels[:5])
  with pytest.raises(ValueError, match="limit must be <= 7"):
    data.load_arrays("fashion_mnist", "train", data_dir=str(tmp_path), limit=8)
  with pytest.raises(FileNotFoundError, match="t10k-images"):
    data.load_arrays("fashion_mnist", "test", data_dir=str(tmp_path))


def test_truncated_or_wrong_idx_files_raise_clear_errors(tmp_path):
  good = _idx_bytes(_random_images(3, 1, (28, 28)))
  with pytest.raises(ValueError, match="truncated"):
    formats.parse_idx(good[:-1])
  with pytest.raises(ValueError, match="trailing bytes"):
    formats.parse_idx(good + b"\0")
  with pytest.raises(ValueError, match="truncated IDX header"):
    formats.parse_idx(good[:10])
  with pytest.raises(ValueError, match="not an IDX file"):
    formats.parse_idx(b"\x01\x00\x08\x03" + good[4:])
  with pytest.raises(ValueError, match="not an IDX file"):
    formats.parse_idx(b"PK")
  cut_gzip = tmp_path / "cut.gz"
  cut_gzip.write_bytes(gzip.compress(good)[:-20])
  with pytest.raises(ValueError, match="corrupt or truncated gzip"):
    formats.read_idx(str(cut_gzip))
  np.testing.assert_array_equal(formats.parse_idx(good), _random_images(3, 1, (28, 28)))

  folder = tmp_path / "mnist"
  folder.mkdir()
  (folder / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(_random_images(3, 1, (32, 32))))
  (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(3, np.uint8)))
  with pytest.raises(ValueError, match=r"shape \[n, 28, 28\]"):
    data.load_arrays("mnist", "test", data_dir=str(tmp_path))
  (folder / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(_random_images(3, 1, (28, 28))))
  (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.array([1, 2, 10], np.uint8)))
  with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
    data.load_arrays("mnist", "test", data_dir=str(tmp_path))


def test_bad_arguments_name_the_argument(tmp_path):
  with pytest.raises(ValueError, match="name must be one of"):
    data.load_arrays("svhn", "train")
  with pytest.raises(ValueError, match="split must be one of"):
    data.load_arrays("mnist", "validation")
  with pytest.raises(ValueError, match="source must be one of"):
    data.load_arrays("mnist", "test", source="web")
  for limit in (0, -3):
    with pytest.raises(ValueError, match=r"limit must be in \[1, inf\]"):
      data.load_arrays("mnist", "test", limit=limit)
  for limit in (True, 2.5):
    with pytest.raises(TypeError, match="limit must be an integer"):
      data.load_arrays("mnist", "test", limit=limit)
  with pytest.raises(FileNotFoundError, match="no local cifar10 files"):
    data.load_arrays("cifar10", "test", data_dir=str(tmp_path), source="local")


def test_tfds_source_loads_through_tfds_load_with_split_slicing(tmp_path, monkeypatch):
  calls = []
  images = _random_images(4, 9)

  def fake_load(name, **kwargs):
    calls.append((name, kwargs))
    return images, np.array([3, 1, 4, 1])

  fake_tfds = types.ModuleType("tensorflow_datasets")
  fake_tfds.load = fake_load
  fake_tfds.as_numpy = lambda tree: tree
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake_tfds)
  got_images, got_labels = data.load_arrays("cifar100", "train", source="tfds", limit=4,
                                            tfds_data_dir="/tfds")
  assert calls == [("cifar100", {"split": "train[:4]", "as_supervised": True, "batch_size": -1,
                                 "data_dir": "/tfds", "shuffle_files": False})]
  np.testing.assert_array_equal(got_images, images)
  assert got_labels.dtype == np.int64 and got_labels.tolist() == [3, 1, 4, 1]
  # 'auto' falls back to tfds when the data set has no local folder.
  data.load_arrays("cifar10", "test", data_dir=str(tmp_path))
  assert calls[-1] == ("cifar10", {"split": "test", "as_supervised": True, "batch_size": -1,
                                   "data_dir": None, "shuffle_files": False})
  # tfds silently returns fewer examples than asked for: that is an error here.
  with pytest.raises(ValueError, match="limit must be <= 4"):
    data.load_arrays("cifar10", "test", source="tfds", limit=10)


# ----------------------------------------------------------------------------- CIFAR


def _cifar_record(image, labels):
  """One record of the binary format: label byte(s), then red, green, blue planes row-major."""
  record = bytearray(labels)
  for channel in range(3):
    for row in range(32):
      for col in range(32):
        record.append(image[row, col, channel])
  return bytes(record)


def _write_cifar(root, dataset, fmt, per_file=3):
  """Writes a tiny CIFAR tree in the original layout; returns {split: (images, fine labels)}."""
  num_classes = 10 if dataset == "cifar10" else 100
  layout = {
      ("cifar10", "binary"): ("cifar-10-batches-bin",
                              {"train": [f"data_batch_{i}.bin" for i in range(1, 6)],
                               "test": ["test_batch.bin"]}),
      ("cifar10", "python"): ("cifar-10-batches-py",
                              {"train": [f"data_batch_{i}" for i in range(1, 6)],
                               "test": ["test_batch"]}),
      ("cifar100", "binary"): ("cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}),
      ("cifar100", "python"): ("cifar-100-python", {"train": ["train"], "test": ["test"]}),
  }[(dataset, fmt)]
  folder = root / layout[0]
  folder.mkdir(parents=True)
  expected = {}
  seed = 0
  for split, files in layout[1].items():
    all_images, all_labels = [], []
    for name in files:
      seed += 1
      rng = np.random.default_rng(seed)
      images = _random_images(per_file, seed)
      fine = rng.integers(0, num_classes, per_file)
      coarse = fine // 5
      if fmt == "binary":
        label_bytes = [[f] for f in fine] if dataset == "cifar10" else list(zip(coarse, fine))
        (folder / name).write_bytes(
            b"".join(_cifar_record(i, lb) for i, lb in zip(images, label_bytes)))
      else:
        batch = {b"batch_label": f"batch {name}".encode(),
                 b"data": images.transpose(0, 3, 1, 2).reshape(per_file, 3072),
                 b"filenames": [f"img_{k}.png".encode() for k in range(per_file)]}
        if dataset == "cifar10":
          batch[b"labels"] = [int(f) for f in fine]
        else:
          batch[b"fine_labels"] = [int(f) for f in fine]
          batch[b"coarse_labels"] = [int(c) for c in coarse]
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
      all_images.append(images)
      all_labels.append(fine)
    expected[split] = (np.concatenate(all_images), np.concatenate(all_labels))
  return expected


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar_files_round_trip_in_both_original_formats(tmp_path, dataset, fmt):
  expected = _write_cifar(tmp_path, dataset, fmt)
  for split in ("train", "test"):
    images, labels = data.load_arrays(dataset, split, data_dir=str(tmp_path), source="local")
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, expected[split][0])
    np.testing.assert_array_equal(labels, expected[split][1])
  assert len(data.load_arrays(dataset, "train", data_dir=str(tmp_path))[0]) == (
      15 if dataset == "cifar10" else 3)


def test_broken_cifar_files_raise_clear_errors(tmp_path):
  _write_cifar(tmp_path / "bin", "cifar10", "binary")
  batch = tmp_path / "bin" / "cifar-10-batches-bin" / "test_batch.bin"
  batch.write_bytes(batch.read_bytes()[:-100])
  with pytest.raises(ValueError, match="truncated or not a cifar10 file"):
    data.load_arrays("cifar10", "test", data_dir=str(tmp_path / "bin"))
  batch.write_bytes(bytes([10]) + bytes(3072))
  with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
    formats.read_cifar_binary(str(batch), "cifar10")
  (tmp_path / "bin" / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
  with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
    data.load_arrays("cifar10", "train", data_dir=str(tmp_path / "bin"))

  _write_cifar(tmp_path / "py", "cifar100", "python")
  train = tmp_path / "py" / "cifar-100-python" / "train"
  train.write_bytes(train.read_bytes()[:200])
  with pytest.raises(ValueError, match="not a readable cifar100 python batch"):
    formats.read_cifar_pickle(str(train), "cifar100")
  train.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}))
  with pytest.raises(ValueError, match="no 'fine_labels' entry"):
    formats.read_cifar_pickle(str(train), "cifar100")
  train.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [1, 2]}))
  with pytest.raises(ValueError, match=r"uint8 \[n, 3072\]"):
    formats.read_cifar_pickle(str(train), "cifar100")
  train.write_bytes(pickle.dumps(os.system))  # would call a function: refused, never run
  with pytest.raises(ValueError, match="not allowed in a CIFAR batch"):
    formats.read_cifar_pickle(str(train), "cifar100")
  with pytest.raises(ValueError, match="dataset must be"):
    formats.read_cifar_pickle(str(train), "mnist")


# ----------------------------------------------------------------------------- pipeline


def _collect(dataset):
  images, labels = [], []
  for batch_images, batch_labels in dataset:
    images.append(batch_images.numpy())
    labels.append(batch_labels.numpy())
  return np.concatenate(images), np.concatenate(labels)


def test_compute_whitening_matches_numpy_mean_and_std():
  images = _random_images(20, 3, (6, 5, 3))
  images[..., 1] //= 4
  mean, std = data.compute_whitening(images)
  scaled = images.astype(np.float64) / 255.0
  np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-6)
  assert mean.dtype == np.float32 and std.shape == (3,)


def test_batch_sizes_beyond_the_limit_are_refused_naming_it():
  images, labels = _random_images(4, 0, (8, 8, 1)), np.arange(4)
  limit = rf"\[1, {data.checks.MAX_BATCH_SIZE}\], got {2**40}"
  with pytest.raises(ValueError, match="batch_size must be in " + limit):
    data.make_dataset(images, labels, batch_size=2**40, training=False)
  info = dataclasses.replace(data.DATASETS["mnist"], input_shape=(8, 8, 1))
  for name in ("batch_size", "test_batch_size"):
    with pytest.raises(ValueError, match=f"{name} must be in " + limit):
      data.DataSplits(info, images, labels, images, labels, **{name: 2**40})


def test_whitened_evaluation_data_has_zero_mean_and_unit_std_per_channel():
  images = _random_images(50, 4, (8, 8, 3))
  images[..., 0] //= 3
  labels = np.arange(50)
  whitening = data.compute_whitening(images)
  got_images, got_labels = _collect(data.make_dataset(images, labels, batch_size=16,
                                                      training=False, whitening=whitening))
  assert got_images.dtype == np.float32 and got_labels.dtype == np.int64
  np.testing.assert_array_equal(got_labels, labels)  # file order, last partial batch kept
  np.testing.assert_allclose(got_images.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(got_images.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
  np.testing.assert_allclose(got_images, (images / 255.0 - whitening[0]) / whitening[1],
                             atol=1e-5)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch_and_covers_every_example():
  images = _random_images(40, 5, (4, 4, 1))
  ids = np.arange(40)

  def epoch_ids(seed, epoch, batch_size=8):
    return _collect(data.make_dataset(images, ids, batch_size=batch_size, training=True,
                                      seed=seed, epoch=epoch))[1]

  first = epoch_ids(1, 0)
  np.testing.assert_array_equal(first, epoch_ids(1, 0))
  np.testing.assert_array_equal(first, data.epoch_permutation(40, 1, 0))
  assert sorted(first) == list(range(40))
  second = epoch_ids(1, 1)
  assert sorted(second) == list(range(40)) and not np.array_equal(first, second)
  assert not np.array_equal(first, epoch_ids(2, 0))
  assert len(epoch_ids(1, 0, batch_size=16)) == 32  # remainder dropped when training


def test_augmented_epochs_are_bit_identical_when_rebuilt_and_differ_across_epochs():
  images = _random_images(12, 6)
  ids = np.arange(12)
  whitening = data.compute_whitening(images)

  def epoch(e, batch_size=4):
    return _collect(data.make_dataset(images, ids, batch_size=batch_size, training=True,
                                      seed=3, epoch=e, augment=data.CIFAR_AUGMENTATION,
                                      whitening=whitening))

  first_images, first_ids = epoch(0)
  again_images, again_ids = epoch(0)  # e.g. a run resumed at epoch 0
  np.testing.assert_array_equal(first_ids, again_ids)
  np.testing.assert_array_equal(first_images, again_images)
  assert first_images.shape == (12, 32, 32, 3) and first_images.dtype == np.float32
  # An example's augmentation depends on its index, not on its position in the batches.
  by_id = first_images[np.argsort(first_ids)]
  other_images, other_ids = epoch(0, batch_size=3)
  np.testing.assert_array_equal(other_images[np.argsort(other_ids)], by_id)
  # Augmentation changed the images and differs in another epoch.
  plain = (images / 255.0 - whitening[0]) / whitening[1]
  assert not np.allclose(by_id, plain, atol=1e-3)
  next_images, next_ids = epoch(1)
  assert not np.allclose(next_images[np.argsort(next_ids)], by_id, atol=1e-3)


def test_cutout_in_the_pipeline_fills_with_the_mean_colour_which_whitens_to_zero():
  images = _random_images(6, 8) // 2 + 100  # no pixel whitens to zero by chance
  whitening = data.compute_whitening(images)
  got_images, _ = _collect(data.make_dataset(
      images, np.arange(6), batch_size=6, training=True, seed=0, epoch=0,
      augment=data.Augmentation(cutout_size=16), whitening=whitening))
  for image in got_images:
    zero = np.all(np.abs(image) < 1e-6, axis=-1)
    rows, cols = np.nonzero(zero)
    assert 64 <= zero.sum() <= 256  # at least the 8x8 left at a corner
    assert zero.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16


def test_make_dataset_rejects_bad_arguments():
  images, labels = _random_images(10, 7, (4, 4, 1)), np.arange(10)
  with pytest.raises(TypeError, match="seed must be an integer"):
    data.make_dataset(images, labels, batch_size=2, training=True, seed=None, epoch=0)
  with pytest.raises(ValueError, match=r"epoch must be in \[0, inf\]"):
    data.make_dataset(images, labels, batch_size=2, training=True, seed=0, epoch=-1)
  with pytest.raises(ValueError, match="must be None when training=False"):
    data.make_dataset(images, labels, batch_size=2, training=False,
                      augment=data.CIFAR_AUGMENTATION)
  with pytest.raises(TypeError, match="augment must be an Augmentation"):
    data.make_dataset(images, labels, batch_size=2, training=True, seed=0, epoch=0,
                      augment="cifar")
  with pytest.raises(ValueError, match=r"batch_size must be in \[1, 65536\]"):
    data.make_dataset(images, labels, batch_size=0, training=False)
  with pytest.raises(ValueError, match="batch_size must be <= 10"):
    data.make_dataset(images, labels, batch_size=11, training=True, seed=0, epoch=0)
  with pytest.raises(ValueError, match="whitening must be"):
    data.make_dataset(images, labels, batch_size=2, training=False,
                      whitening=([0.5], [0.0]))
  with pytest.raises(TypeError, match="uint8"):
    data.make_dataset(images.astype(np.float32), labels, batch_size=2, training=False)
  with pytest.raises(ValueError, match="labels must be 10 integers"):
    data.make_dataset(images, labels[:9], batch_size=2, training=False)


def test_load_data_is_gin_configurable_and_serves_mnist_batches(real_mnist):
  gin.clear_config()
  try:
    gin.parse_config("""
        load_data.name = 'mnist'
        load_data.batch_size = 64
        load_data.train_limit = 300
        load_data.test_limit = 100
        load_data.seed = 5
    """)
    splits = data.load_data(data_dir=real_mnist)
  finally:
    gin.clear_config()
  assert splits.num_classes == 10 and splits.input_shape == (28, 28, 1)
  assert splits.augment == data.NO_AUGMENTATION and splits.steps_per_epoch == 4
  assert splits.train_images.shape == (300, 28, 28, 1)
  mean, std = splits.whitening
  scaled = splits.train_images / 255.0
  np.testing.assert_allclose([mean[0], std[0]], [scaled.mean(), scaled.std()], rtol=1e-5)
  train_images, train_labels = _collect(splits.train_dataset(2))
  assert train_images.shape == (256, 28, 28, 1) and train_labels.dtype == np.int64
  np.testing.assert_array_equal(
      train_labels, splits.train_labels[data.epoch_permutation(300, 5, 2)][:256])
  test_images, test_labels = _collect(splits.test_dataset())
  np.testing.assert_array_equal(test_labels, splits.test_labels)
  np.testing.assert_allclose(test_images, (splits.test_images / 255.0 - mean) / std, atol=1e-5)


def test_cifar_splits_default_to_the_paper_augmentation(tmp_path):
  _write_cifar(tmp_path, "cifar10", "python")
  splits = data.load_data("cifar10", data_dir=str(tmp_path), batch_size=5, source="local")
  assert splits.augment == data.CIFAR_AUGMENTATION
  assert splits.num_classes == 10 and splits.input_shape == (32, 32, 3)
  assert splits.steps_per_epoch == 3 and len(splits.test_images) == 3
