"""Reading ``.npz`` archives as data: sizes checked before anything is allocated.

``np.load`` trusts each member's header: a chip file whose ``.npy`` header claims a 74 GiB
array ends in ``MemoryError`` before any check of ours can run. ``read_npz`` first reads every
member's header, refuses object (pickled) arrays, compares the declared size with the bytes the
member actually holds and with ``MAX_BYTES``, and only then reads the arrays. Every error is a
``ValueError`` naming the file and the member.
"""
import io
import math
import os
import zipfile
import zlib

import numpy as np

# Largest total of the arrays in one archive (a chip file of 8 voltages x 2 maps x 2^26 cells as
# float32 is 4 GiB).
MAX_BYTES = 8 * 2 ** 30
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def _member_header(member, name, where):
  """(shape, fortran_order, dtype, header length) of one ``.npy`` member."""
  try:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
      shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
      raise ValueError(f"unsupported .npy format version {version}")
  except _READ_ERRORS as error:
    raise ValueError(f"{where}: member {name!r} has no valid .npy header ({error})") from error
  return shape, fortran, dtype, member.tell()


def read_npz(source, where, max_bytes=None):
  """{key: array} of an ``.npz`` (a path or bytes); ``where`` names it in errors."""
  max_bytes = MAX_BYTES if max_bytes is None else max_bytes
  try:
    archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes)
                              else os.fspath(source))
  except _READ_ERRORS as error:
    raise ValueError(f"{where} is not a readable .npz archive ({error})") from error
  arrays, total = {}, 0
  with archive:
    infos = archive.infolist()
    for info in infos:
      name = info.filename
      if not name.endswith(".npy"):
        raise ValueError(f"{where}: member {name!r} is not a .npy array")
      try:
        with archive.open(info) as member:
          shape, _, dtype, header = _member_header(member, name, where)
      except _READ_ERRORS as error:
        raise ValueError(f"{where}: member {name!r} is unreadable ({error})") from error
      if dtype.hasobject:
        raise ValueError(f"{where}: member {name!r} holds Python objects (dtype {dtype}); "
                         "only plain arrays are read")
      declared = math.prod(shape) * dtype.itemsize
      if declared != info.file_size - header:
        raise ValueError(f"{where}: member {name!r} declares shape {shape} of {dtype} "
                         f"({declared} bytes) but holds {info.file_size - header} bytes")
      total += declared
      if total > max_bytes:
        raise ValueError(f"{where}: arrays of more than {max_bytes} bytes (member {name!r} "
                         f"brings them to {total}); refusing to read it")
    for info in infos:
      try:
        with archive.open(info) as member:
          arrays[info.filename[:-4]] = np.lib.format.read_array(member, allow_pickle=False)
      except _READ_ERRORS as error:
        raise ValueError(f"{where}: member {info.filename!r} is corrupt ({error})") from error
  return arrays
