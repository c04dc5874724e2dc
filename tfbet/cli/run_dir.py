"""Reading a ``bin/train`` output directory as data.

A run directory may come from someone else. What is read from it is checked before use:

* ``model.h5`` is rebuilt by ``tfbet.safe_loading`` (no Lambda bytecode, no foreign modules);
* ``operative_config.gin`` is parsed statement by statement without executing anything first:
  it must be UTF-8 text of bounded size, and ``import`` lines (which run the imported module's
  code) are refused unless they name a ``tfbet`` module; ``include`` lines are refused.
* Its values are literals, macros, or references to the parts of a training job
  (``ALLOWED_REFERENCES``). ``@x()`` calls x when the configurable that holds it runs, so
  ``load_data.data_dir = @train()`` would start a training job where the file says: anything
  else (``train``, ``load_data``, a user's module) is refused naming the line (docs/design.md,
  §3 Trust). The one exception is where bin/train records a user's model builder,
  ``train.model_fn = @my_builder`` (not called): no reading binary calls ``train``.
"""
import collections
import io
import os
import tokenize

import gin
from gin import config_parser

MAX_GIN_BYTES = 16 * 2 ** 20

# The parts of a training job a run directory's config may reference (and so call): builders of
# models, schemes, constraints, trainers, optimizers, error patterns and augmentations, which
# only build objects from their settings. Jobs (``train``) and data loading (``load_data``) run
# work and touch files, so a config may bind them but not reference them as values.
ALLOWED_REFERENCES = (
    "tfbet.models.get_model", "tfbet.quantization.get_scheme", "tfbet.constraints.WeightClip",
    "tfbet.training.BitErrorTrainer", "tfbet.training.paper_optimizer",
    "tfbet.cli.training_job.pattern_chip", "tfbet.augment.Augmentation",
    # A callback of the training job, referenced uncalled (train.rerr_monitor = @RErrMonitor).
    "tfbet.callbacks.RErrMonitor")
# Where bin/train records the model builder of a user's module (--gin_module).
_MODEL_FN = "tfbet.cli.training_job.train"

_Reference = collections.namedtuple("_Reference", "name evaluate")


class _RecordReferences(config_parser.ParserDelegate):
  """Parses each reference to a ``_Reference`` (checked afterwards) and macros to nothing."""

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return _Reference(scoped_configurable_name, evaluate)

  def macro(self, macro_name):
    return None


def _references(value):
  """The ``_Reference``s in a parsed gin value (nested in lists, tuples and dicts too)."""
  if isinstance(value, _Reference):
    yield value
  elif isinstance(value, (list, tuple)):
    for item in value:
      yield from _references(item)
  elif isinstance(value, dict):
    for item in value.items():
      yield from _references(item)


def _registered(selector):
  """The configurable gin knows as ``selector`` (unscoped), or None."""
  try:
    return gin.get_configurable(selector)
  except (KeyError, ValueError):
    return None


def _is_users_model_builder(statement, reference):
  """Whether ``reference`` is a user's model builder as bin/train records it (see above)."""
  train = _registered(_MODEL_FN)
  if (reference.evaluate or statement.arg_name != "model_fn" or train is None
      or _registered(statement.selector) is not train):
    return False
  target = _registered(reference.name.rsplit("/", 1)[-1])
  module = getattr(target, "__module__", None) or ""
  return target is not None and module.split(".")[0] not in ("tfbet", "gin")


def _check_references(path, statement):
  """Refuses a reference of a binding to anything but ``ALLOWED_REFERENCES`` (see above)."""
  allowed = [_registered(name) for name in ALLOWED_REFERENCES]
  for reference in _references(statement.value):
    target = _registered(reference.name.rsplit("/", 1)[-1])
    if target is not None and any(target is part for part in allowed):
      continue
    if _is_users_model_builder(statement, reference):
      continue
    key = ".".join(filter(None, (statement.selector, statement.arg_name)))
    key = f"{statement.scope}/{key}" if statement.scope else key
    call = "()" if reference.evaluate else ""
    names = ", ".join(name.rsplit(".", 1)[-1] for name in ALLOWED_REFERENCES)
    raise ValueError(
        f"gin file {path!r} line {statement.location.line_num}: refusing the reference "
        f"`@{reference.name}{call}` in `{key}`; a run directory's config is data and may "
        f"reference only the parts of a training job ({names}): anything else (train, "
        "load_data, a user's module) could run a job or write files when it is called")


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
  ``tfbet``, ``include`` lines and references to anything but the parts of a training job (see
  above); the parts (and a user's modules) must be registered with gin before.
  """
  text = read_gin_text(path)
  try:
    statements = list(config_parser.ConfigParser(io.StringIO(text), _RecordReferences()))
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
    elif isinstance(statement, config_parser.BindingStatement):
      _check_references(path, statement)
  return path
