"""Readers of the original data set files: IDX (MNIST, Fashion-MNIST) and CIFAR batches.

Each reader takes one file and returns numpy arrays, or raises ValueError naming the file and
what is wrong with it. Files are data: gzip bombs and oversized headers are refused before
memory is allocated, and CIFAR's pickled batches are unpickled with an allow-list of numpy
arrays and lists, never arbitrary objects. Where the files of a data set lie and how they are
combined into splits is :mod:`tfbet.data`'s job.
"""
import codecs
import math
import os
import pickle
import struct
import zlib

import numpy as np

__all__ = ["MAX_FILE_BYTES", "check_labels", "parse_idx", "read_cifar_binary", "read_cifar_pickle", "read_idx"]

# ----------------------------------------------------------------------------- IDX files

# IDX type codes (third magic byte) -> numpy dtype; multi-byte types are big-endian.
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
  """Decodes an (uncompressed) IDX file: magic 0 0 <type> <ndim>, ndim big-endian uint32 dims."""
  if len(data) < 4:
    raise ValueError(f"{source}: not an IDX file, {len(data)} bytes is shorter than the magic.")
  zero_a, zero_b, type_code, ndim = data[:4]
  if zero_a != 0 or zero_b != 0 or type_code not in _IDX_DTYPES or ndim == 0:
    raise ValueError(f"{source}: not an IDX file, magic {data[:4].hex()} (expected 0000tt0n "
                     f"with type tt in {sorted(hex(t) for t in _IDX_DTYPES)}, n >= 1).")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{source}: truncated IDX header, {len(data)} of {header} bytes.")
  dims = struct.unpack(f">{ndim}I", data[4:header])
  dtype = _IDX_DTYPES[type_code]
  expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow for any header.
  if len(data) - header != expected:
    what = "truncated" if len(data) - header < expected else "has trailing bytes"
    raise ValueError(f"{source}: IDX file {what}: dims {dims} need {expected} data bytes, "
                     f"found {len(data) - header}.")
  return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


# Largest (decompressed) data file read: a gzip bomb or a header claiming more is refused.
MAX_FILE_BYTES = 2 ** 31


def _read_maybe_gzip(path: str) -> bytes:
  """File contents, gunzipped when the file starts with the gzip magic (whatever its name)."""
  size = os.path.getsize(path)
  if size > MAX_FILE_BYTES:
    raise ValueError(f"{path}: {size} bytes, more than the limit of {MAX_FILE_BYTES}.")
  with open(path, "rb") as f:
    data = f.read()
  if data[:2] != b"\x1f\x8b":
    return data
  parts, total = [], 0
  try:
    while data:  # One gzip member after another.
      member = zlib.decompressobj(wbits=31)
      part = member.decompress(data, MAX_FILE_BYTES + 1 - total)
      total += len(part)
      if total > MAX_FILE_BYTES:
        raise ValueError(f"{path}: gzip data expands to more than the limit of "
                         f"{MAX_FILE_BYTES} bytes.")
      if not member.eof:
        raise EOFError("compressed data ended before the end-of-stream marker")
      parts.append(part)
      data = member.unused_data
  except (EOFError, OSError, zlib.error) as e:
    raise ValueError(f"{path}: corrupt or truncated gzip data ({e}).") from e
  return b"".join(parts)


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, gzipped or not."""
  return parse_idx(_read_maybe_gzip(path), source=path)


# ----------------------------------------------------------------------------- CIFAR files

CIFAR_PIXELS = 32 * 32 * 3
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}


def _cifar_classes(dataset: str) -> int:
  if dataset not in CIFAR_CLASSES:
    raise ValueError(f"dataset must be 'cifar10' or 'cifar100', got {dataset!r}.")
  return CIFAR_CLASSES[dataset]


def check_labels(labels: np.ndarray, num_classes: int, source: str):
  """Raises ValueError naming ``source`` unless every label is in [0, num_classes)."""
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"{source}: labels must be in [0, {num_classes - 1}], found "
                     f"[{labels.min()}, {labels.max()}].")


def read_cifar_binary(path: str, dataset: str = "cifar10"):
  """Reads a CIFAR binary batch: records of label byte(s) + 3072 channel-major pixels.

  CIFAR-10 records have one label byte; CIFAR-100 records a coarse and a fine label byte, of
  which the fine label is returned. Returns (uint8 [n, 32, 32, 3], int64 [n]).
  """
  num_classes = _cifar_classes(dataset)
  label_bytes = 1 if dataset == "cifar10" else 2
  record = label_bytes + CIFAR_PIXELS
  with open(path, "rb") as f:
    data = f.read()
  if not data or len(data) % record:
    raise ValueError(f"{path}: a {dataset} binary batch holds whole {record}-byte records, got "
                     f"{len(data)} bytes (truncated or not a {dataset} file).")
  records = np.frombuffer(data, np.uint8).reshape(-1, record)
  labels = records[:, label_bytes - 1].astype(np.int64)
  check_labels(labels, num_classes, path)
  images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


class _NDArrayToken:
  """Stands for ``numpy.ndarray`` in a CIFAR pickle: calling it allocates nothing."""


def _reconstruct_empty(subtype, shape, dtype):
  """numpy's unpickling constructor, for the empty start array numpy's pickles always use.

  The real shape and data come with ``__setstate__``, which checks them against each other;
  a pickle asking this step for a huge shape (a ``MemoryError``) is refused.
  """
  if subtype is not _NDArrayToken or math.prod(np.atleast_1d(shape).tolist()) != 0:
    raise pickle.UnpicklingError(f"unexpected array construction {shape!r} in a CIFAR batch.")
  return np.ndarray.__new__(np.ndarray, shape, dtype)


class _CifarUnpickler(pickle.Unpickler):
  """Unpickles only what CIFAR batches hold (numpy arrays, lists), never arbitrary objects."""

  _ALLOWED = {
      ("numpy", "ndarray"): _NDArrayToken,
      ("numpy", "dtype"): np.dtype,
      ("numpy.core.multiarray", "_reconstruct"): _reconstruct_empty,
      ("numpy._core.multiarray", "_reconstruct"): _reconstruct_empty,
      ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol 2.
  }

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch.")
    return self._ALLOWED[(module, name)]


def read_cifar_pickle(path: str, dataset: str = "cifar10"):
  """Reads a CIFAR python batch: a pickled dict with b'data' [n, 3072] and the labels.

  The labels are b'labels' for CIFAR-10 and b'fine_labels' for CIFAR-100. Returns
  (uint8 [n, 32, 32, 3], int64 [n]).
  """
  num_classes = _cifar_classes(dataset)
  label_key = "labels" if dataset == "cifar10" else "fine_labels"
  with open(path, "rb") as f:
    try:
      batch = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError) as e:
      raise ValueError(f"{path}: not a readable {dataset} python batch ({e}).") from e
  if not isinstance(batch, dict):
    raise ValueError(f"{path}: a {dataset} python batch is a dict, got {type(batch).__name__}.")

  def field(key):
    for candidate in (key.encode(), key):
      if candidate in batch:
        try:
          return np.asarray(batch[candidate])
        except (ValueError, TypeError) as e:  # e.g. ragged nested lists
          raise ValueError(f"{path}: {dataset} python batch entry {key!r} is not an array "
                           f"({e}).") from e
    raise ValueError(f"{path}: {dataset} python batch has no {key!r} entry "
                     f"(keys: {sorted(map(str, batch))}).")

  data = field("data")
  labels = field(label_key)
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
    raise ValueError(f"{path}: 'data' must be uint8 [n, {CIFAR_PIXELS}], "
                     f"got {data.dtype} {data.shape}.")
  if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{path}: {label_key!r} must be {len(data)} integers, "
                     f"got {labels.dtype} {labels.shape}.")
  labels = labels.astype(np.int64)
  check_labels(labels, num_classes, path)
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels
