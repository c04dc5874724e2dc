"""Tests of tfbet.formats: the IDX and CIFAR file readers and their refusals."""
import gzip
import pickle
import struct

import numpy as np
import pytest

from tfbet import formats


def test_cifar_binary_pixel_order_is_channel_planes_row_major(tmp_path):
  record = bytearray(3074)
  record[0], record[1] = 7, 42  # coarse, fine
  record[2 + 0 * 1024 + 5 * 32 + 7] = 200  # red at row 5, col 7
  record[2 + 2 * 1024 + 31 * 32 + 0] = 99  # blue at row 31, col 0
  path = tmp_path / "one.bin"
  path.write_bytes(bytes(record))
  images, labels = formats.read_cifar_binary(str(path), "cifar100")
  assert labels.tolist() == [42]
  assert images[0, 5, 7, 0] == 200 and images[0, 31, 0, 2] == 99
  assert images.sum() == 299


class _Pickled:
  """Pickles as the given reduce value, to craft hostile CIFAR batches."""

  def __init__(self, reduce_value):
    self.reduce_value = reduce_value

  def __reduce__(self):
    return self.reduce_value


_RECONSTRUCT = np.empty(0).__reduce__()[0]
_HUGE = 10 ** 12


@pytest.mark.parametrize("payload", [
    _Pickled((_RECONSTRUCT, (np.ndarray, (_HUGE, 3072), b"b"))),
    _Pickled((np.ndarray, ((_HUGE, 3072),))),
    _Pickled((_RECONSTRUCT, (np.ndarray, (0,), b"b"),
              (1, (_HUGE, 3072), np.dtype(np.uint8), False, b"\0" * 64))),
])
def test_cifar_pickles_claiming_huge_arrays_fail_naming_the_file(tmp_path, payload):
  batch = tmp_path / "test_batch"
  batch.write_bytes(pickle.dumps({b"data": payload, b"labels": [1]}, protocol=2))
  with pytest.raises(ValueError, match="test_batch: not a readable cifar10 python batch"):
    formats.read_cifar_pickle(str(batch), "cifar10")


def test_idx_headers_whose_dims_overflow_64_bits_are_refused():
  # dims (2^32 - 1)^3 wrap around in int64 arithmetic; the data is 8 bytes.
  header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *[2 ** 32 - 1] * 3)
  with pytest.raises(ValueError, match="f.idx: IDX file truncated"):
    formats.parse_idx(header + bytes(8), source="f.idx")


def test_a_gzip_bomb_is_refused_at_the_size_limit(tmp_path, monkeypatch):
  path = tmp_path / "t10k-images-idx3-ubyte.gz"
  path.write_bytes(gzip.compress(bytes(10000)))
  monkeypatch.setattr(formats, "MAX_FILE_BYTES", 1000)
  with pytest.raises(ValueError, match="idx3-ubyte.gz: gzip data expands to more than"):
    formats.read_idx(str(path))


def test_multi_member_gzip_files_are_read_whole(tmp_path):
  header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 6)
  path = tmp_path / "labels.gz"
  path.write_bytes(gzip.compress(header + bytes([1, 2])) + gzip.compress(bytes([3, 4, 5, 6])))
  np.testing.assert_array_equal(formats.read_idx(str(path)), [1, 2, 3, 4, 5, 6])


def test_a_cifar_python_batch_with_ragged_entries_names_the_file(tmp_path):
  # Found by tests/test_fuzz.py: numpy's own error for ragged lists did not name the file.
  for batch in ({b"data": [None, []], b"labels": [1]}, {b"data": np.zeros((1, 3072), np.uint8),
                                                        b"labels": [None, []]}):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="data_batch_1.* is not an array"):
      formats.read_cifar_pickle(str(path))
