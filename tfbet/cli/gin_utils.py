"""Gin set-up shared by the binaries: search paths, user modules, parsing, operative config.

Users bring their own models (or any gin configurable) to the binaries like in DDSP and T5:
``--gin_module`` imports their Python module, whose ``@gin.configurable`` functions the gin
files can then reference (``train.model_fn = @my_model``), and ``--gin_search_path`` adds the
directories their gin files (and ``include`` lines) are found in.
"""
import importlib
import importlib.util
import logging
import os
import re
import sys
import tokenize

from absl import flags
import gin

from tfbet.cli import run_dir

from tfbet import files

# The configs shipped with an installed package (tfbet/gin_configs, copied there by setup.py's
# build_py) and with a checkout (gin/ next to the package, in the directory holding setup.py).
# Only a checkout's gin/ is used: next to an installed package lies site-packages/gin, which is
# the gin-config library itself.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHECKOUT_DIR = os.path.dirname(_PACKAGE_DIR)
GIN_SEARCH_PATHS = (os.path.join(_PACKAGE_DIR, "gin_configs"),) + (
    (os.path.join(_CHECKOUT_DIR, "gin"),)
    if os.path.isfile(os.path.join(_CHECKOUT_DIR, "setup.py")) else ())


def gin_dir():
  """The directory of the shipped gin configs."""
  for path in GIN_SEARCH_PATHS:
    if os.path.isdir(path):
      return path
  raise FileNotFoundError(f"no gin config directory found in {GIN_SEARCH_PATHS}")


# ``train`` parameters of tfbet before the parts of a training job were configured on
# themselves, and what each became. ``migrate_bindings`` rewrites old bindings (run directories
# written by those versions stay readable) and ``parse`` names the new binding when a config
# still uses an old one.
RENAMED_BINDINGS = {
    "train.scheme": "get_scheme.name",
    "train.precision": "get_scheme.precision",
    "train.int_conversion": "get_scheme.int_conversion",
    "train.w_max": "WeightClip.w_max",  # with train.weight_constraint = @WeightClip()
    "train.method": "BitErrorTrainer.method",
    "train.rate": "BitErrorTrainer.rate",
    "train.allow_high_rate": "BitErrorTrainer.allow_high_rate",
    "train.loss_threshold": "BitErrorTrainer.loss_threshold",
    "train.weight_decay": "BitErrorTrainer.weight_decay",
    "train.label_smoothing": "BitErrorTrainer.label_smoothing",
    "train.gradient_combination": "BitErrorTrainer.gradient_combination",
    "train.pattern_condition": "BitErrorTrainer.pattern_condition",
    "train.learning_rate": "paper_optimizer.learning_rate",
    "train.momentum": "paper_optimizer.momentum",
    "train.nesterov": "paper_optimizer.nesterov",
}


def config_bindings(text):
  """{parameter: value text} of a config written by gin.config_str(); None if a line is not one.

  A line that does not start a binding continues the value above it (gin wraps long values). A
  parameter bound twice keeps its later value, as gin does when it parses the text: a config
  of an older tfbet, migrated (``migrate_bindings``), binds e.g. ``get_scheme.precision`` both
  where get_scheme recorded its own default and, later, where ``train.precision`` (the value
  that version used) was.
  """
  bindings, name = {}, None
  for line in text.splitlines():
    if not line.strip() or line.startswith("#"):
      continue
    key, equals, value = line.partition(" = ")
    if equals and re.fullmatch(r"[\w./]+", key):
      name = key
      bindings[name] = value.strip()
    elif name is not None and line[:1].isspace():
      bindings[name] += " " + line.strip()
    else:
      return None
  return bindings


def migrate_bindings(lines):
  """Gin lines with every old ``train`` binding (``RENAMED_BINDINGS``) in its new form.

  ``train.w_max = x`` becomes ``train.weight_constraint = @WeightClip()`` and
  ``WeightClip.w_max = x`` (``train.weight_constraint = None`` and ``WeightClip.w_max = None``
  for x = None, as in methods/rquant.gin); other lines stay.
  """
  migrated = []
  for line in lines:
    name, equals, value = line.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or name not in RENAMED_BINDINGS:
      migrated.append(line)
    elif name != "train.w_max":
      migrated.append(f"{RENAMED_BINDINGS[name]} = {value}")
    elif value == "None":
      migrated += ["train.weight_constraint = None", "WeightClip.w_max = None"]
    else:
      migrated += ["train.weight_constraint = @WeightClip()", f"WeightClip.w_max = {value}"]
  return migrated


def _renamed_hint(error):
  """The new name of an old ``train`` binding that gin refused, or ''."""
  for old, new in RENAMED_BINDINGS.items():
    if f"Configurable 'train' doesn't have a parameter named '{old[len('train.'):]}'" in str(
        error):
      extra = " with train.weight_constraint = @WeightClip()" if old == "train.w_max" else ""
      return (f"\n{old} was renamed: bind {new}{extra} (each part of a training job is "
              "configured on itself; see README, 'Configuring training')")
  return ""


class _QuietSearchPathProbes(logging.Filter):
  """gin logs an ERROR for every search path prefix it tries before the one that exists."""

  def filter(self, record):
    return not str(record.getMessage()).startswith("Path not found:")


logging.getLogger().addFilter(_QuietSearchPathProbes())


def define_flags(flag_values=flags.FLAGS):
  """``--gin_search_path`` and ``--gin_module``, shared by bin/train, bin/eval, bin/eval_chips."""
  flags.DEFINE_multi_string(
      "gin_search_path", [],
      "Directory searched for --gin_file paths and for `include` lines of gin files, before "
      "the shipped gin/ directory (repeatable; DDSP style).", flag_values=flag_values)
  flags.DEFINE_multi_string(
      "gin_module", [],
      "Python module to import before the gin files are parsed, so its @gin.configurable "
      "functions (e.g. a model builder for train.model_fn) can be referenced: a dotted module "
      "name on PYTHONPATH or a path to a .py file (repeatable; like T5's --module_import). "
      "bin/eval needs the same modules as the bin/train run it evaluates.",
      flag_values=flag_values)


def import_modules(modules):
  """Imports user modules (dotted names or .py files); they register their gin configurables."""
  for module in modules or ():
    if not module.endswith(".py"):
      try:
        importlib.import_module(module)
      except ImportError as error:
        raise ImportError(f"--gin_module={module!r}: {error} (give a module name on PYTHONPATH "
                          "or the path of a .py file)") from error
      continue
    path = os.path.abspath(module)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--gin_module file {module!r} does not exist")
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is not None:
      if os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
        continue  # imported before (gin refuses to register a configurable twice)
      raise ValueError(f"--gin_module {module!r}: a different module named {name!r} is already "
                       f"imported ({getattr(loaded, '__file__', 'built in')}); rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # so gin and Keras find the module by name
    try:
      spec.loader.exec_module(loaded)
    except BaseException:
      del sys.modules[name]
      raise


def resolve(path, search_paths=()):
  """``path`` as given if it exists, else relative to a search path or the shipped gin/ dir."""
  if os.path.exists(path):
    return path
  roots = tuple(search_paths or ()) + GIN_SEARCH_PATHS
  for root in roots:
    candidate = os.path.join(root, path)
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(f"gin file {path!r} not found (also looked in {roots})")


_ADDED_SEARCH_PATHS = set()


def parse(gin_files=(), gin_params=(), finalize=True, search_paths=(), modules=(),
          run_config=None):
  """Imports ``modules``, then parses a run's config, config files and bindings.

  Files are paths, or paths relative to ``search_paths`` (searched first) or the shipped gin/
  directory. Unknown configurables or parameters fail with gin's own error message (naming the
  new binding of a renamed one). ``run_config`` is a run directory's operative config, parsed
  first with old bindings migrated (``migrate_bindings``), so older runs stay readable; it is
  data, checked before gin sees it (``run_dir.check_gin_file``: no imports outside tfbet, no
  includes, references only to the parts of a training job), after ``modules`` registered
  their configurables.
  """
  for path in search_paths or ():
    if not os.path.isdir(path):
      raise FileNotFoundError(f"--gin_search_path {path!r} is not a directory")
  import_modules(modules)
  # gin searches the paths in the order they were added; users' paths go first.
  for path in tuple(search_paths or ()) + GIN_SEARCH_PATHS:  # for `include` lines
    path = os.path.abspath(path)
    if os.path.isdir(path) and path not in _ADDED_SEARCH_PATHS:
      gin.add_config_file_search_path(path)
      _ADDED_SEARCH_PATHS.add(path)
  gin_files = [run_dir.check_gin_file(resolve(f, search_paths)) for f in gin_files or ()]
  try:
    if run_config is not None:
      run_dir.check_gin_file(run_config, trusted=False)
      lines = run_dir.read_gin_text(run_config).splitlines()
      try:
        gin.parse_config("\n".join(migrate_bindings(lines)))
      except ValueError as error:
        raise ValueError(f"in the run config {run_config!r}: {error}") from error
    gin.parse_config_files_and_bindings(gin_files,
                                        list(gin_params or ()),
                                        finalize_config=finalize)
  except ValueError as error:
    hint = _renamed_hint(error)
    if not hint:
      raise
    raise ValueError(f"{error}{hint}") from error
  except (SyntaxError, tokenize.TokenError) as error:  # a --gin_param gin cannot read (`nan`)
    raise ValueError(_binding_syntax_error(error, gin_params)) from error


def _binding_syntax_error(error, gin_params):
  """One line for gin's SyntaxError on a binding (gin's text spans lines, with a caret)."""
  location = error.args[1] if len(error.args) > 1 else None
  binding = getattr(location, "line_content", None) or getattr(error, "text", None)
  binding = repr(binding.strip()) if isinstance(binding, str) else \
      "among " + ", ".join(repr(param) for param in gin_params or ())
  reason = str(error.args[0] if error.args else error).strip().splitlines()[-1].strip()
  return (f"cannot parse gin binding {binding}: {reason.rstrip('.')}. A value is a Python literal "
          "(a number, a quoted string, True/False/None, a list or tuple of them) or an "
          "@reference; nan and inf are not accepted")


def save_operative_config(directory, name="operative_config.gin"):
  """Writes the bindings actually used so far next to checkpoints (like ddsp)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (keeps --help fast)
  tf.io.gfile.makedirs(directory)
  return files.write_text(os.path.join(directory, name), gin.operative_config_str())
