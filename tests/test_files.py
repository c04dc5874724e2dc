"""tfbet.files: atomic writes and the writability check done before long work."""
import json
import os

import pytest

from tfbet import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = tmp_path / "out.json"
  files.write_text(path, "old")
  with pytest.raises(RuntimeError):
    with files.atomic_open(path) as f:
      f.write("half of the new")
      raise RuntimeError("killed mid-write")
  assert path.read_text() == "old"
  assert sorted(os.listdir(tmp_path)) == ["out.json"]
  files.write_text(path, "new")
  assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["out.json"]


def test_the_temporary_path_keeps_the_suffix_for_writers_that_infer_the_format(tmp_path):
  with files.atomic_path(tmp_path / "model.h5") as temporary:
    assert temporary.endswith(".h5") and os.path.dirname(temporary) == str(tmp_path)
    with open(temporary, "wb") as f:
      f.write(b"\x89HDF")
  assert (tmp_path / "model.h5").read_bytes() == b"\x89HDF"


def test_outputs_that_cannot_be_written_are_named(tmp_path):
  (tmp_path / "a_file").write_text("")
  with pytest.raises(ValueError, match="is a directory"):
    files.check_writable(str(tmp_path))
  with pytest.raises(ValueError, match="cannot write output .*a_file/r.json"):
    files.check_writable(str(tmp_path / "a_file" / "r.json"))
  # A writable path: the parent directory is created, nothing else is left behind.
  assert files.check_writable(str(tmp_path / "new" / "r.json")).endswith("r.json")
  assert os.listdir(tmp_path / "new") == []
  with pytest.raises(ValueError, match="mode"):
    with files.atomic_open(tmp_path / "x", "a"):
      pass


def test_json_is_written_into_a_new_folder_and_reads_back_equal(tmp_path):
  record = {"chip": "random_1000", "errors": [3, 0, 12], "rate": 0.015}
  path = files.write_json(tmp_path / "new" / "deeper" / "record.json", record)
  assert path == str(tmp_path / "new" / "deeper" / "record.json")
  with open(path) as f:
    assert json.load(f) == record
  assert os.listdir(tmp_path / "new" / "deeper") == ["record.json"]



def test_write_failures_are_told_from_other_errors_with_the_path_where_known():
  import errno  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/out/r.json")
  assert files.write_failure(full) == ("/out/r.json", "No space left on device")
  try:  # wrapped by a caller: the cause still names the path
    try:
      raise full
    except OSError as error:
      raise RuntimeError("callback failed") from error
  except RuntimeError as wrapped:
    assert files.write_failure(wrapped) == ("/out/r.json", "No space left on device")
  checkpoint = tf.errors.UnknownError(None, None, "/out/ckpt-2_temp/part; Read-only file system")
  assert files.write_failure(checkpoint) == (None, "Read-only file system")
  assert files.write_failure(PermissionError(errno.EACCES, "Permission denied", "/x")) == (
      "/x", "Permission denied")
  assert files.write_failure(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None
  assert files.write_failure(ValueError("No space left on device")) is None
