"""Reading a ``bin/train`` output directory as data.

A run directory may come from someone else. What is read from it is checked before use:

* ``model.h5`` is rebuilt by ``tfbet.safe_loading`` (no Lambda bytecode, no foreign modules);
* ``operative_config.gin`` is parsed statement by statement without executing anything first:
  it must be UTF-8 text of bounded size, and ``import`` lines (which run the imported module's
  code) are refused unless they name a ``tfbet`` module; ``include`` lines are refused.
Gin values themselves are literals or references to registered configurables, never code.
"""
import io
import os
import tokenize

from gin import config_parser

MAX_GIN_BYTES = 16 * 2 ** 20


class _NoReferences(config_parser.ParserDelegate):
  """Parses references and macros to nothing: only the statements are inspected."""

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return None

  def macro(self, macro_name):
    return None


def read_gin_text(path):
  """The text of a gin file; fails naming the file if it is huge, binary or not UTF-8."""
  try:
    size = os.path.getsize(path)
    if size > MAX_GIN_BYTES:
      raise ValueError(f"gin file {path!r} has {size} bytes, more than the limit of "
                       f"{MAX_GIN_BYTES}; not a gin config")
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as error:
    raise ValueError(f"cannot read gin file {path!r}: {error}") from error
  if b"\0" in raw:
    raise ValueError(f"gin file {path!r} holds binary content (NUL bytes); not a gin config")
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as error:
    raise ValueError(f"gin file {path!r} is not UTF-8 text (byte {error.start}); not a gin "
                     "config") from error


def check_gin_file(path, trusted=True):
  """Parses ``path`` without executing it; syntax errors name the file and line.

  ``trusted=False`` (a config read from a run directory) also refuses imports of modules outside
  ``tfbet`` and ``include`` lines.
  """
  text = read_gin_text(path)
  try:
    statements = list(config_parser.ConfigParser(io.StringIO(text), _NoReferences()))
  except (SyntaxError, tokenize.TokenError, ValueError) as error:
    raise ValueError(f"gin file {path!r} has a syntax error: {error}") from error
  if trusted:
    return path
  for statement in statements:
    line = getattr(getattr(statement, "location", None), "line_num", "?")
    if isinstance(statement, config_parser.ImportStatement):
      module = statement.module
      if module != "tfbet" and not module.startswith("tfbet."):
        raise ValueError(
            f"gin file {path!r} line {line}: refusing `{statement.format()}`; a run "
            "directory's config may import only tfbet modules (importing runs the module's "
            "code)")
    elif isinstance(statement, config_parser.IncludeStatement):
      raise ValueError(f"gin file {path!r} line {line}: refusing `include "
                       f"{statement.filename!r}`; a run directory's config must be "
                       "self-contained")
  return path
