"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100: loading and the input pipeline.

Arrays come from the original files on disk (IDX for MNIST / Fashion-MNIST, the binary or the
python batches for CIFAR, read by :mod:`tfbet.formats`) or from tensorflow-datasets (tfds), which downloads and prepares them
when it can reach the network; both give uint8 NHWC images and int64 labels and feed the same
pipeline. Any other tfds image classification data set with fixed-size uint8 images, a class
label and 'train' / 'test' splits works by its tfds name.

Order: tfds stores the examples of a split sorted by a salted md5 of each example's key. For
MNIST and Fashion-MNIST the key is the example's position in the original file, so that order
is undone here and both sources give the same examples in the same order (the same runs).
Other tfds data sets keep tfds' own fixed order.

The pipeline scales to [0, 1] and whitens per channel with statistics of the training set
(App. F, also used on MNIST, docs/design.md §5). Training batches are augmented (App. F, see
tfbet.augment) and shuffled. The training data of epoch e is a pure function of (seed, e): the
order is a Philox permutation keyed by (seed, e) and the augmentation decisions of every example
are drawn from Philox streams keyed by (seed, e) at the example's index, then applied batch by
batch, so a run resumed at epoch e sees exactly the batches of an uninterrupted run.
"""
import contextlib
import dataclasses
import hashlib
import logging as stdlib_logging  # urllib3's logger (absl's logging is the module's own)
import os
from typing import Optional, Tuple

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from tfbet.augment import Augmentation, CIFAR_AUGMENTATION, NO_AUGMENTATION
from tfbet.batch_augment import augment_batch, draw_parameters
from tfbet import checks
from tfbet import formats

__all__ = [
    "Augmentation", "CIFAR_AUGMENTATION", "NO_AUGMENTATION", "DATASETS", "DatasetInfo",
    "DataSplits", "compute_whitening", "dataset_info", "default_data_dir", "epoch_permutation",
    "load_arrays", "load_data", "make_dataset",
]

DATA_DIR_ENV = "TFBET_DATA_DIR"
SOURCES = ("auto", "local", "tfds")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the pipeline and the models need to know about a data set.

  num_train / num_test are None for tfds data sets not listed in DATASETS (known after loading).
  tfds_keys_are_file_positions: tfds generates this data set with the example's position in the
  original file as its key (MNIST, Fashion-MNIST), so load_arrays can restore the file order.
  """
  name: str
  num_classes: int
  input_shape: Tuple[int, int, int]
  tfds_name: str
  num_train: Optional[int]
  num_test: Optional[int]
  default_augmentation: Augmentation
  tfds_keys_are_file_positions: bool = False


DATASETS = {
    "mnist": DatasetInfo("mnist", 10, (28, 28, 1), "mnist", 60000, 10000, NO_AUGMENTATION,
                         tfds_keys_are_file_positions=True),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, (28, 28, 1), "fashion_mnist", 60000,
                                 10000, NO_AUGMENTATION, tfds_keys_are_file_positions=True),
    "cifar10": DatasetInfo("cifar10", 10, (32, 32, 3), "cifar10", 50000, 10000,
                           CIFAR_AUGMENTATION),
    "cifar100": DatasetInfo("cifar100", 100, (32, 32, 3), "cifar100", 50000, 10000,
                            CIFAR_AUGMENTATION),
}


def dataset_info(name: str, tfds_data_dir: Optional[str] = None) -> DatasetInfo:
  """The DatasetInfo of a data set in DATASETS, or of any tfds image classification data set.

  For a tfds name the information comes from the builder's metadata (no download): the image
  feature must have a fixed [h, w, c] uint8 shape and the label must be a ClassLabel.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"name must be a data set name, got {name!r}.")
  if name in DATASETS:
    return DATASETS[name]
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  try:
    builder = tfds.builder(name, data_dir=tfds_data_dir)
  except Exception as err:  # tfds raises several types for unknown names
    raise ValueError(f"name must be one of {tuple(DATASETS)} or the name of a "
                     f"tensorflow-datasets image classification data set; {name!r} is "
                     f"neither ({type(err).__name__}: {err}).") from err
  keys = builder.info.supervised_keys
  if not (isinstance(keys, tuple) and len(keys) == 2 and all(isinstance(k, str) for k in keys)):
    raise ValueError(f"tfds data set {name!r} has no (image, label) supervised keys "
                     f"(got {keys!r}); tfbet needs an image classification data set.")
  image, label = builder.info.features[keys[0]], builder.info.features[keys[1]]
  shape = tuple(getattr(image, "shape", ()) or ())
  if len(shape) != 3 or None in shape or getattr(image, "dtype", None) != tf.uint8:
    raise ValueError(f"tfds data set {name!r}: feature {keys[0]!r} must be fixed-size uint8 "
                     f"images [h, w, c], got shape {shape} dtype "
                     f"{getattr(image, 'dtype', None)}; resize it into a data set of its own.")
  num_classes = getattr(label, "num_classes", None)
  if not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError(f"tfds data set {name!r}: feature {keys[1]!r} must be a class label "
                     f"with at least 2 classes, got {label!r}.")
  return DatasetInfo(name, num_classes, shape, name, None, None, NO_AUGMENTATION)


def default_data_dir() -> str:
  """$TFBET_DATA_DIR, else <repository root>/../shared/data (where the project keeps data)."""
  from_env = os.environ.get(DATA_DIR_ENV)
  if from_env:
    return from_env
  return os.path.normpath(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))


# ----------------------------------------------------------------------------- local files


def _find_file(directory: str, names) -> Optional[str]:
  for name in names:
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def _mnist_dir(data_dir: str, info: DatasetInfo) -> Optional[str]:
  directory = os.path.join(data_dir, info.name)
  return directory if os.path.isdir(directory) else None


def _load_mnist_local(directory: str, info: DatasetInfo, split: str):
  prefix = "train" if split == "train" else "t10k"
  found = {}
  for kind, idx in (("images", "idx3"), ("labels", "idx1")):
    stem = f"{prefix}-{kind}-{idx}-ubyte"
    names = (stem + ".gz", stem, f"{prefix}-{kind}.{idx}-ubyte.gz", f"{prefix}-{kind}.{idx}-ubyte")
    found[kind] = _find_file(directory, names)
    if found[kind] is None:
      raise FileNotFoundError(f"{info.name} {split}: none of {names} in {directory}.")
  images, labels = formats.read_idx(found["images"]), formats.read_idx(found["labels"])
  height, width, _ = info.input_shape
  if images.dtype != np.uint8 or images.shape[1:] != (height, width):
    raise ValueError(f"{found['images']}: expected uint8 images of shape [n, {height}, {width}], "
                     f"got {images.dtype} {images.shape}.")
  if labels.dtype != np.uint8 or labels.ndim != 1:
    raise ValueError(f"{found['labels']}: expected a uint8 vector of labels, "
                     f"got {labels.dtype} {labels.shape}.")
  if len(images) != len(labels):
    raise ValueError(f"{info.name} {split}: {len(images)} images but {len(labels)} labels "
                     f"({found['images']}, {found['labels']}).")
  return images[..., np.newaxis], labels.astype(np.int64)


# Layout of the local CIFAR folders (as unpacked from the official archives).
_CIFAR_LAYOUTS = {
    "cifar10": {
        "binary": ("cifar-10-batches-bin",
                   {"train": [f"data_batch_{i}.bin" for i in range(1, 6)],
                    "test": ["test_batch.bin"]}),
        "python": ("cifar-10-batches-py",
                   {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}),
    },
    "cifar100": {
        "binary": ("cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}),
        "python": ("cifar-100-python", {"train": ["train"], "test": ["test"]}),
    },
}


def _cifar_dir(data_dir: str, info: DatasetInfo) -> Optional[Tuple[str, str]]:
  """(folder, format) of the first local CIFAR layout found, binary preferred."""
  for root in (data_dir, os.path.join(data_dir, info.name)):
    for fmt in ("binary", "python"):
      directory = os.path.join(root, _CIFAR_LAYOUTS[info.name][fmt][0])
      if os.path.isdir(directory):
        return directory, fmt
  return None


def _load_cifar_local(directory: str, fmt: str, info: DatasetInfo, split: str):
  reader = formats.read_cifar_binary if fmt == "binary" else formats.read_cifar_pickle
  parts = []
  for name in _CIFAR_LAYOUTS[info.name][fmt][1][split]:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{info.name} {split}: missing {path}.")
    parts.append(reader(path, info.name))
  return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


# ----------------------------------------------------------------------------- loading


def expected_local_files(data_dir: str, info: DatasetInfo):
  """Where the original files of a data set of DATASETS are looked for, as text for messages."""
  if info.name in _CIFAR_LAYOUTS:
    layouts = _CIFAR_LAYOUTS[info.name]
    return " or ".join(
        f"{os.path.join(root, folder)}/{{{','.join(names['train'] + names['test'])}}}"
        for root in (data_dir, os.path.join(data_dir, info.name))
        for folder, names in (layouts["binary"], layouts["python"]))
  return (f"{os.path.join(data_dir, info.name)}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte"
          "[.gz]")


def _local_location(data_dir: str, info: DatasetInfo):
  if info.name in _CIFAR_LAYOUTS:
    return _cifar_dir(data_dir, info)
  directory = _mnist_dir(data_dir, info)
  return None if directory is None else (directory, "idx")


def tfds_file_order(num_examples: int, split: str) -> np.ndarray:
  """Position in the original file of each example of a tfds split whose keys are positions.

  tfds writes a split sorted by md5(split name + str(key)) (its documented, fixed shuffling);
  sorting the positions 0..n-1 the same way gives, for record j of the split, its position.
  """
  salt = hashlib.md5(split.encode("utf-8"))
  hashes = []
  for position in range(num_examples):
    digest = salt.copy()
    digest.update(str(position).encode("utf-8"))
    hashes.append(digest.hexdigest())
  return np.argsort(np.array(hashes), kind="stable")


class DataUnavailableError(RuntimeError):
  """A data set is neither in local files nor obtainable through tensorflow-datasets."""


def _directories(root):
  """The set of directories under ``root`` (``root`` included; empty if it does not exist)."""
  return {path for path, _, _ in os.walk(root)}


def _remove_new_empty_directories(root, before):
  """Removes the empty directories under ``root`` that are not in ``before``, deepest first:
  what a failed tfds download leaves (``*.tmp.*`` folders, the data set's folder)."""
  for path in sorted(_directories(root) - before, key=len, reverse=True):
    try:
      os.rmdir(path)  # only succeeds on an empty directory
    except OSError:
      pass


# tfds retries a failed download 10 times with a backoff doubling from 0.2 s: 3.4 minutes of
# silence on a machine without network before its error. Two retries still ride out a glitch.
TFDS_DOWNLOAD_RETRIES = 2


@contextlib.contextmanager
def _few_download_retries():
  """tfds' downloader retries at most TFDS_DOWNLOAD_RETRIES times inside the block."""
  from tensorflow_datasets.core.download import downloader  # pylint: disable=g-import-not-at-top
  saved = getattr(downloader, "MAX_RETRIES", None)
  if saved is not None:
    downloader.MAX_RETRIES = min(saved, TFDS_DOWNLOAD_RETRIES)
  try:
    yield
  finally:
    if saved is not None:
      downloader.MAX_RETRIES = saved


def _load_tfds(info: DatasetInfo, split: str, limit: Optional[int], tfds_data_dir, data_dir):
  """Whole split as numpy through tensorflow-datasets (downloads and prepares when online).

  Data sets whose tfds keys are file positions come back in file order (see module docstring);
  `limit` is applied after that, so it keeps the first examples of the file on both paths.
  A download that fails fails within seconds (TFDS_DOWNLOAD_RETRIES), naming the local files
  that would have been read instead.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  restore_order = info.tfds_keys_are_file_positions
  split_spec = split if (limit is None or restore_order) else f"{split}[:{limit}]"
  expected = expected_local_files(data_dir, info) if info.name in DATASETS else None
  if expected:
    logging.info("%s %s: no local files (looked for %s; set $%s); loading it through "
                 "tensorflow-datasets (data_dir %s)", info.name, split, expected, DATA_DIR_ENV,
                 tfds_data_dir or os.environ.get("TFDS_DATA_DIR") or "tfds' default")
  tfds_root = os.path.expanduser(tfds_data_dir or os.environ.get("TFDS_DATA_DIR") or
                                 os.path.join("~", "tensorflow_datasets"))
  existing = _directories(tfds_root)
  # tfds downloads the files in parallel threads, whose urllib3 retry warnings went on after
  # this function had failed with its one line; that line says all of it.
  stdlib_logging.getLogger("urllib3").setLevel(stdlib_logging.ERROR)
  try:
    with _few_download_retries():
      dataset = tfds.load(info.tfds_name, split=split_spec, as_supervised=True, batch_size=-1,
                          data_dir=tfds_data_dir, shuffle_files=False)
  except Exception as err:  # download, checksum and preparation errors of many types
    _remove_new_empty_directories(tfds_root, existing)
    local_hint = (f" put the original files at {expected} (or set ${DATA_DIR_ENV} to a folder "
                  f"holding {info.name}/), or" if expected else "")
    raise DataUnavailableError(
        f"could not load {info.name!r} {split} from tensorflow-datasets "
        f"({type(err).__name__}: {str(err)[:500]}). Without network access,{local_hint} "
        f"pre-fill tfds' download folder from local copies of the original files "
        f"(scripts/tfds_prefill.py) and point TFDS_DATA_DIR or tfds_data_dir at it.") from err
  images, labels = tfds.as_numpy(dataset)
  images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.int64)
  if restore_order:
    in_file_order = np.empty(len(images), np.int64)
    in_file_order[tfds_file_order(len(images), split)] = np.arange(len(images))
    images, labels = images[in_file_order], labels[in_file_order]
  return images, labels


def load_arrays(name: str, split: str, *, data_dir: Optional[str] = None, source: str = "auto",
                limit: Optional[int] = None, tfds_data_dir: Optional[str] = None):
  """Images uint8 [n, h, w, c] and labels int64 [n] of one split.

  Args:
    name: one of DATASETS ('mnist', 'fashion_mnist', 'cifar10', 'cifar100'), read from the
      original files or tfds, or the name of any tfds image classification data set.
    split: 'train' or 'test'.
    data_dir: folder with the original files (default: default_data_dir()). MNIST-like data sets
      are read from <data_dir>/<name>/ (IDX, gzipped or not); CIFAR from
      <data_dir>[/<name>]/cifar-10-batches-{bin,py} or cifar-100-{binary,python}.
    source: 'local' (files only), 'tfds' (tensorflow-datasets only) or 'auto' (local files
      when the data set's folder exists, else tensorflow-datasets).
    limit: keep only the first `limit` examples (small runs); must not exceed the split.
    tfds_data_dir: data_dir passed to tfds.load (None: tfds' default).
  """
  info = dataset_info(name, tfds_data_dir)
  checks.choice(split, "split", SPLITS)
  checks.choice(source, "source", SOURCES)
  if limit is not None:
    checks.count(limit, "limit", minimum=1)
  data_dir = default_data_dir() if data_dir is None else data_dir
  has_readers = name in DATASETS  # other names exist only in tensorflow-datasets
  location = _local_location(data_dir, info) if source != "tfds" and has_readers else None
  if source == "local" and location is None:
    raise FileNotFoundError(
        f"no local {name} files under {data_dir} (set data_dir or ${DATA_DIR_ENV}, or use "
        f"source='tfds')." if has_readers else
        f"{name!r} can only be read through tensorflow-datasets: use source='tfds' or 'auto'.")
  if location is None:
    images, labels = _load_tfds(info, split, limit, tfds_data_dir, data_dir)
    origin = f"tfds {info.tfds_name} {split}"
  elif location[1] == "idx":
    images, labels = _load_mnist_local(location[0], info, split)
    origin = location[0]
  else:
    images, labels = _load_cifar_local(location[0], location[1], info, split)
    origin = location[0]
  if images.shape[1:] != info.input_shape or len(images) != len(labels):
    raise ValueError(f"{origin}: expected images [n, {', '.join(map(str, info.input_shape))}] "
                     f"and n labels, got {images.shape} and {labels.shape}.")
  formats.check_labels(labels, info.num_classes, origin)
  if limit is not None:
    if limit > len(images):
      raise ValueError(f"limit must be <= {len(images)} (size of {name} {split}), got {limit}.")
    images, labels = images[:limit], labels[:limit]
  return images, labels


# ----------------------------------------------------------------------------- pipeline


def _check_images(images, labels):
  if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
    raise TypeError("images must be a uint8 numpy array [n, height, width, channels], got "
                    f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}.")
  labels = np.asarray(labels)
  if labels.shape != images.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be {len(images)} integers, got {labels.dtype} {labels.shape}.")
  return labels.astype(np.int64)


def compute_whitening(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of uint8 images scaled to [0, 1] (float32 [c]).

  Computed exactly from per-channel histograms, so no float copy of the data set is made.
  """
  if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
    raise TypeError("images must be a uint8 numpy array [n, height, width, channels].")
  if images.size == 0:
    raise ValueError("images must not be empty.")
  levels = np.arange(256, dtype=np.float64) / 255.0
  means, stds = [], []
  for channel in range(images.shape[-1]):
    counts = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    mean = (counts * levels).sum() / total
    variance = (counts * (levels - mean) ** 2).sum() / total
    means.append(mean)
    stds.append(np.sqrt(variance))
  return np.asarray(means, np.float32), np.asarray(stds, np.float32)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order of the training examples in epoch `epoch`: a Philox permutation of (seed, epoch)."""
  checks.seed(seed)
  checks.count(epoch, "epoch")
  generator = np.random.Generator(np.random.Philox(np.random.SeedSequence([seed, epoch])))
  return generator.permutation(num_examples)


def _check_whitening(whitening, channels):
  if whitening is None:
    return None
  try:
    mean, std = whitening
  except (TypeError, ValueError) as e:
    raise TypeError(f"whitening must be a pair (mean, std), got {whitening!r}.") from e
  mean = np.asarray(mean, np.float32).reshape(-1)
  std = np.asarray(std, np.float32).reshape(-1)
  if mean.shape != (channels,) or std.shape != (channels,) or not np.all(std > 0):
    raise ValueError(f"whitening must be (mean, std) with {channels} values each and std > 0, "
                     f"got {whitening!r}.")
  return mean, std


def make_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, training: bool,
                 seed: Optional[int] = None, epoch: Optional[int] = None,
                 augment: Optional[Augmentation] = None,
                 whitening: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                 fill_color: Optional[np.ndarray] = None,
                 drop_remainder: Optional[bool] = None) -> tf.data.Dataset:
  """Batched (float32 images, int64 labels) for one pass over the data.

  Training (training=True): the order is epoch_permutation(n, seed, epoch) and `augment` runs
  on whole batches (augment.augment_batch) with the decisions augment.draw_parameters draws for
  (seed, epoch), one row per example of `images`, so the result depends only on (data, seed,
  epoch) and an example's augmentation not on the batch it lands in. Evaluation
  (training=False): data order, no augmentation.

  Args:
    images: uint8 [n, height, width, channels].
    labels: integer [n].
    batch_size: examples per batch.
    training: shuffle and augment (True) or not (False).
    seed, epoch: seed in [0, 2**63), epoch >= 0 (``tfbet.checks``); required when training,
      must be None otherwise.
    augment: Augmentation to run when training (None: none); must be None when not training.
    whitening: (mean, std) per channel on the [0, 1] scale, or None to only scale to [0, 1].
    fill_color: [0, 1] colour of areas emptied by augmentation (App. F: the mean colour).
      Default: the whitening mean, else the mean colour of `images`.
    drop_remainder: drop a last, smaller batch. Default: `training`.
  """
  labels = _check_images(images, labels)
  checks.count(batch_size, "batch_size", minimum=1, maximum=checks.MAX_BATCH_SIZE)
  if augment is not None and not isinstance(augment, Augmentation):
    raise TypeError(f"augment must be an Augmentation or None, got {augment!r}.")
  channels = images.shape[-1]
  whitening = _check_whitening(whitening, channels)
  drop_remainder = training if drop_remainder is None else bool(drop_remainder)
  if training:
    checks.seed(seed)
    checks.count(epoch, "epoch")
    if drop_remainder and len(images) < batch_size:
      raise ValueError(f"batch_size must be <= {len(images)} examples when dropping the "
                       f"remainder, got {batch_size}.")
  else:
    if seed is not None or epoch is not None or (augment is not None and augment.enabled):
      raise ValueError("seed, epoch and augment must be None when training=False "
                       "(evaluation data is neither shuffled nor augmented).")

  if training:
    order = epoch_permutation(len(images), seed, epoch)
    images, labels = images[order], labels[order]
  augmenting = augment is not None and augment.enabled
  if augmenting:
    if fill_color is None:
      fill_color = whitening[0] if whitening is not None else compute_whitening(images)[0]
    fill = np.asarray(fill_color, np.float32).reshape(-1)
    if fill.shape != (channels,) or not np.all((fill >= 0) & (fill <= 1)):
      raise ValueError(f"fill_color must be {channels} values in [0, 1], got {fill_color!r}.")
    # Decisions are drawn per example (by its index in `images`) and follow it into its batch.
    parameters = draw_parameters(augment, len(images), images.shape[1:], seed, epoch)
    parameters = {key: value[order] for key, value in parameters.items()}
    dataset = tf.data.Dataset.from_tensor_slices((images, labels, parameters))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda batch, batch_labels, batch_parameters: (
            augment_batch(batch, batch_parameters, augment, fill), batch_labels),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    scale = 1.0
  else:
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    scale = 1.0 / 255.0

  mean, std = whitening if whitening is not None else (np.zeros(channels, np.float32),
                                                        np.ones(channels, np.float32))

  def normalize(batch_images, batch_labels):
    values = tf.cast(batch_images, tf.float32) * scale
    return (values - mean) / std, batch_labels

  dataset = dataset.map(normalize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


class DataSplits:
  """Train and test arrays of a data set with the pipeline settings that go with them.

  Attributes:
    info: DatasetInfo (num_classes, input_shape, ...).
    train_images, train_labels, test_images, test_labels: uint8 NHWC / int64 arrays.
    whitening: (mean, std) float32 [channels] of the training images, or None.
    augment: Augmentation applied to training batches.
    batch_size, test_batch_size, seed: pipeline settings.
  """

  def __init__(self, info: DatasetInfo, train_images, train_labels, test_images, test_labels, *,
               batch_size: int = 128, test_batch_size: Optional[int] = None, seed: int = 0,
               augment: Optional[Augmentation] = None, whiten: bool = True):
    self.info = info
    self.train_labels = _check_images(train_images, train_labels)
    self.test_labels = _check_images(test_images, test_labels)
    self.train_images, self.test_images = train_images, test_images
    for images in (train_images, test_images):
      if images.shape[1:] != info.input_shape:
        raise ValueError(f"images must have shape [n, {info.input_shape}] for {info.name}, "
                         f"got {images.shape}.")
    checks.count(batch_size, "batch_size", minimum=1, maximum=checks.MAX_BATCH_SIZE)
    if test_batch_size is not None:
      checks.count(test_batch_size, "test_batch_size", minimum=1,
                   maximum=checks.MAX_BATCH_SIZE)
    checks.seed(seed)
    self.batch_size = batch_size
    self.test_batch_size = batch_size if test_batch_size is None else test_batch_size
    self.seed = seed
    self.augment = info.default_augmentation if augment is None else augment
    self.whitening = compute_whitening(train_images) if whiten else None
    # Emptied areas get the mean colour of the training set even without whitening (App. F).
    self.fill_color = (self.whitening[0] if self.whitening is not None
                       else compute_whitening(train_images)[0])

  @property
  def name(self) -> str:
    return self.info.name

  @property
  def num_classes(self) -> int:
    return self.info.num_classes

  @property
  def input_shape(self) -> Tuple[int, int, int]:
    return self.info.input_shape

  @property
  def steps_per_epoch(self) -> int:
    """Training batches per epoch (the last partial batch is dropped)."""
    return len(self.train_images) // self.batch_size

  def train_dataset(self, epoch: int) -> tf.data.Dataset:
    """Shuffled, augmented, whitened batches of epoch `epoch` (a pure function of seed, epoch)."""
    return make_dataset(self.train_images, self.train_labels, batch_size=self.batch_size,
                        training=True, seed=self.seed, epoch=epoch, augment=self.augment,
                        whitening=self.whitening, fill_color=self.fill_color,
                        drop_remainder=True)

  def test_dataset(self) -> tf.data.Dataset:
    """Whitened test batches in file order, the last batch kept."""
    return make_dataset(self.test_images, self.test_labels, batch_size=self.test_batch_size,
                        training=False, whitening=self.whitening, drop_remainder=False)


@gin.configurable
def load_data(name: str = gin.REQUIRED, *, batch_size: int = 128,
              test_batch_size: Optional[int] = None, seed: int = 0,
              augment: Optional[Augmentation] = None, whiten: bool = True,
              data_dir: Optional[str] = None, source: str = "auto",
              tfds_data_dir: Optional[str] = None, train_limit: Optional[int] = None,
              test_limit: Optional[int] = None) -> DataSplits:
  """Loads a data set and its pipeline settings (the gin entry point of the data).

  Args:
    name: 'mnist', 'fashion_mnist', 'cifar10', 'cifar100' or any tfds image classification
      data set with fixed-size images (see dataset_info).
    batch_size: training batch size (paper: 128).
    test_batch_size: evaluation batch size (default: batch_size).
    seed: seed of the shuffling and augmentation of every epoch.
    augment: Augmentation for training; None = the data set's default (CIFAR: App. F's
      crop + flip + AutoAugment + Cutout; MNIST: none).
    whiten: per-channel whitening with training-set statistics (App. F).
    data_dir, source, tfds_data_dir: see load_arrays.
    train_limit, test_limit: keep only the first n examples of a split (small runs).
  """
  info = dataset_info(name, tfds_data_dir)
  arrays = {}
  for split, limit in (("train", train_limit), ("test", test_limit)):
    arrays[split] = load_arrays(name, split, data_dir=data_dir, source=source, limit=limit,
                                tfds_data_dir=tfds_data_dir)
  return DataSplits(info, *arrays["train"], *arrays["test"], batch_size=batch_size,
                    test_batch_size=test_batch_size, seed=seed, augment=augment, whiten=whiten)
