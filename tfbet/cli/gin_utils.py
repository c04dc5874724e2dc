"""Gin set-up shared by the binaries: search path, parsing, saving the operative config."""
import logging
import os

import gin
import tensorflow as tf

from tfbet import files

# The configs shipped with the repository (gin/ next to the package in a checkout) and with an
# installed package (tfbet/gin_configs, copied there by setup.py when present).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_SEARCH_PATHS = (
    os.path.join(os.path.dirname(_PACKAGE_DIR), "gin"),
    os.path.join(_PACKAGE_DIR, "gin_configs"),
)


def gin_dir():
  """The directory of the shipped gin configs."""
  for path in GIN_SEARCH_PATHS:
    if os.path.isdir(path):
      return path
  raise FileNotFoundError(f"no gin config directory found in {GIN_SEARCH_PATHS}")


class _QuietSearchPathProbes(logging.Filter):
  """gin logs an ERROR for every search path prefix it tries before the one that exists."""

  def filter(self, record):
    return not str(record.getMessage()).startswith("Path not found:")


logging.getLogger().addFilter(_QuietSearchPathProbes())


def resolve(path):
  """``path`` as given if it exists, else relative to the shipped gin/ directory."""
  if os.path.exists(path):
    return path
  for root in GIN_SEARCH_PATHS:
    candidate = os.path.join(root, path)
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(f"gin file {path!r} not found (also looked in {GIN_SEARCH_PATHS})")


_ADDED_SEARCH_PATHS = set()


def parse(gin_files=(), gin_params=(), finalize=True):
  """Parses config files (paths, or paths relative to the shipped gin/ dir) and bindings.

  Unknown configurables or parameters fail with gin's own error message.
  """
  for path in GIN_SEARCH_PATHS:  # for `include` lines inside the files
    if os.path.isdir(path) and path not in _ADDED_SEARCH_PATHS:
      gin.add_config_file_search_path(path)
      _ADDED_SEARCH_PATHS.add(path)
  gin.parse_config_files_and_bindings([resolve(f) for f in gin_files or ()],
                                      list(gin_params or ()),
                                      finalize_config=finalize)


def save_operative_config(directory, name="operative_config.gin"):
  """Writes the bindings actually used so far next to checkpoints (like ddsp)."""
  tf.io.gfile.makedirs(directory)
  return files.write_text(os.path.join(directory, name), gin.operative_config_str())
