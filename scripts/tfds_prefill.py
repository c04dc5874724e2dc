#!/usr/bin/env python3
"""Serves tensorflow-datasets' download step of MNIST / Fashion-MNIST from local files.

For machines without network access that have copies of the original IDX files (gzipped):

    python scripts/tfds_prefill.py --name=mnist --source_dir=../shared/data/mnist \
        --tfds_data_dir=$HOME/tensorflow_datasets

puts each file where tfds' download manager looks for a finished download
(<tfds_data_dir>/downloads/<name>/<file name derived from url and checksum>, with its .INFO
record). `tfds.load(name, data_dir=tfds_data_dir)` (or bin/train with TFDS_DATA_DIR set) then
runs tfds' own extract-and-prepare without any network access.

Checksums: tfds registers the sha256 of the upstream .gz bytes and trusts a finished download
without hashing it again. Re-compressed copies (same content, other gzip bytes) would fail that
check, so this script checks the content instead: the md5 of every *decompressed* file must be
the one of the standard data set (below); a file that differs is refused. Use it only for the
data sets listed here.
"""
import argparse
import gzip
import hashlib
import os
import shutil
import sys

# md5 of the uncompressed original files (the standard releases).
KNOWN_CONTENT_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


def _content_md5(path: str) -> str:
  digest = hashlib.md5()
  with gzip.open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def prefill(name: str, source_dir: str, tfds_data_dir: str) -> list:
  """Places the local .gz files of `name` as finished tfds downloads; returns their paths."""
  if name not in KNOWN_CONTENT_MD5:
    raise ValueError(f"--name must be one of {sorted(KNOWN_CONTENT_MD5)}, got {name!r}.")
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top  (a tfds dependency)
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(name, data_dir=tfds_data_dir)
  url_infos = builder.url_infos or {}
  if not url_infos:
    raise RuntimeError(f"tfds registers no download checksums for {name!r}; cannot pre-fill.")
  download_dir = os.path.join(tfds_data_dir, "downloads", builder.name)
  os.makedirs(download_dir, exist_ok=True)
  placed = []
  for url, url_info in sorted(url_infos.items()):
    file_name = url.rsplit("/", 1)[-1]
    base = file_name[:-3] if file_name.endswith(".gz") else file_name
    expected = KNOWN_CONTENT_MD5[name].get(base)
    if expected is None:
      raise RuntimeError(f"tfds downloads {url} for {name!r}, which this script does not know.")
    source = os.path.join(source_dir, file_name)
    if not os.path.isfile(source):
      raise FileNotFoundError(f"--source_dir: {source} is missing (tfds needs {file_name}).")
    found = _content_md5(source)
    if found != expected:
      raise ValueError(f"{source}: decompressed content has md5 {found}, the standard {name} "
                       f"file has {expected}; refusing to hand it to tfds as {url}.")
    target = os.path.join(download_dir, resource.get_dl_fname(url, url_info.checksum))
    partial = target + ".partial"
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    resource.write_info_file(url=url, path=epath.Path(target), dataset_name=builder.name,
                             original_fname=file_name, url_info=url_info)
    placed.append(target)
  return placed


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--name", required=True, choices=sorted(KNOWN_CONTENT_MD5),
                      help="tfds data set name.")
  parser.add_argument("--source_dir", required=True,
                      help="folder with the original gzipped IDX files (train-images-idx3-"
                           "ubyte.gz, ...).")
  parser.add_argument("--tfds_data_dir", default=os.environ.get(
      "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")),
                      help="tfds data_dir to pre-fill (default: $TFDS_DATA_DIR or "
                           "~/tensorflow_datasets).")
  args = parser.parse_args(argv)
  for path in prefill(args.name, args.source_dir, args.tfds_data_dir):
    print(f"placed {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
