"""Starts a binary (``BINARIES``): quiet TensorFlow by default, flags defined, then ``app.run``.

While TensorFlow loads it prints C++ notices (oneDNN, CPU features, the CUDA probe of a machine
without a GPU driver), gin logs every file lookup, and tf-keras calls the ``model.h5`` we write
on purpose a legacy format. A user can act on none of it, so by default the binaries

* set ``TF_CPP_MIN_LOG_LEVEL=2`` (unless it is set), which hides TensorFlow's C++ INFO and
  WARNING lines once it runs;
* import TensorFlow with the process's stderr captured and pass on what it wrote without the
  notices of loading (``_LOAD_NOISE``): they come from absl's C++ logging before anything
  initializes it, which ignores that variable. Everything else, errors included, passes;
* filter gin's lookups and a few TensorFlow notices from Python logging (``_Notices``).

absl's ``--verbosity=1`` (``-v 1``, DEBUG; absl's default is 0, INFO) or higher shows it all
(``TF_CPP_MIN_LOG_LEVEL=0``, nothing filtered). This module loads neither TensorFlow nor tfbet's
other modules before that (``import tfbet`` is lazy), and ``--help`` never loads TensorFlow.
"""
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings

# A C++ INFO/WARNING line of absl logging ("I0000 00:00:17.. 5332 port.cc:153] ..."), its
# notice before initialization, the second line of the CPU feature notice, and the failed CUDA
# probe of a CUDA build of TensorFlow on a machine without a GPU driver.
_LOAD_NOISE = re.compile(r"^([IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
                         r"|WARNING: All log messages before absl::InitializeLog\(\) "
                         r"|To enable the following instructions: "
                         r"|E\d{4} .*failed call to cuInit)")

# The binaries: name -> the module that is the binary, whose docstring is its usage text
# (--help), ``define_flags()`` defines its flags (without importing TensorFlow) and
# ``main(argv)`` runs it. bin/<name>, the console script tfbet-<name> (setup.py) and
# ``python -m <module>`` all start it with ``start(name)``.
BINARIES = {
    "train": "tfbet.cli.train",
    "eval": "tfbet.cli.eval",
    "eval_chips": "tfbet.cli.eval_chips",
    "simulate_chips": "tfbet.cli.simulate_chips",
    "reproduce": "tfbet.cli.reproduce",
    "compare": "tfbet.cli.compare",
    "energy_budget": "tfbet.cli.energy_budget",
    "bisect_rate": "tfbet.cli.bisect_rate",
    "sensitivity": "tfbet.cli.sensitivity",
    "weight_noise": "tfbet.cli.weight_noise",
    "diagnose": "tfbet.cli.diagnose",
    "chip_map": "tfbet.cli.chip_map",
}
# The binaries that read and write JSON, npz files and plots only: they never import TensorFlow.
WITHOUT_TENSORFLOW = ("simulate_chips", "compare", "energy_budget")

# absl's --verbosity: -1 warnings, 0 (the default once flags are parsed) adds INFO, 1 DEBUG.
_VERBOSITY_FLAGS = ("--verbosity", "-v")


def verbosity(argv):
  """absl's ``--verbosity``/``-v`` as given in ``argv`` (the last one wins), else -1."""
  level = -1
  for i, arg in enumerate(argv[1:], start=1):
    if arg == "--":
      break
    for name in _VERBOSITY_FLAGS:
      if arg == name and i + 1 < len(argv):
        value = argv[i + 1]
      elif arg.startswith(name + "="):
        value = arg[len(name) + 1:]
      else:
        continue
      try:
        level = int(value)
      except ValueError:
        pass  # absl refuses it with its own message
  return level


def quiet_tensorflow(argv):
  """Sets TF_CPP_MIN_LOG_LEVEL (if unset) from ``argv``'s verbosity; filters notices."""
  loud = verbosity(argv) >= 1
  if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if loud else "2"
  if loud:
    return
  # We save model.h5 on purpose (tfbet.safe_loading reads it without running code).
  warnings.filterwarnings("ignore", message=r"You are saving your model as an HDF5 file")
  for name in ("", "absl", "tensorflow"):  # gin logs to the root logger
    logging.getLogger(name).addFilter(_NOTICES)


class _Notices(logging.Filter):
  """Log records a user cannot act on: gin's search path probes, TensorFlow's notices."""

  PATTERNS = (
      "system_path_file_exists:",  # gin's resource reader, once per included file
      "considered legacy",  # tf-keras on saving model.h5, which we write on purpose
      "Sharding callback duration",  # TensorFlow's checkpoint writer
      "Compiled the loaded model, but the compiled metrics have yet to be built",  # on export
  )

  def filter(self, record):
    message = str(record.getMessage())
    return not any(pattern in message for pattern in self.PATTERNS)


_NOTICES = _Notices()


def import_tensorflow_quietly():
  """Imports TensorFlow (and probes its devices) with the noise of loading filtered out."""
  if "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()  # the CUDA probe logs now, not at the first op
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = captured.read().decode("utf-8", errors="replace")
  kept = [line for line in text.splitlines(keepends=True) if not _LOAD_NOISE.match(line)]
  sys.stderr.write("".join(kept))
  sys.stderr.flush()


def program_name(argv0):
  """How the user started the binary: ``bin/train``, ``tfbet-train`` or ``python -m ...``."""
  if argv0.endswith(".py"):
    return "python -m tfbet.cli." + os.path.basename(argv0)[:-len(".py")]
  if os.path.basename(argv0).startswith("tfbet-"):
    return os.path.basename(argv0)
  return argv0


def usage_text(doc, argv0):
  """The usage text ``doc`` (written for the ``tfbet-*`` console scripts) for ``argv0``.

  One text serves both ways of starting a binary: started as ``bin/<name>`` from a checkout,
  every ``tfbet-<name>`` of a binary in that folder reads ``bin/<name>`` instead.
  """
  name = program_name(argv0)
  if name != argv0:
    return doc
  folder = os.path.dirname(argv0)
  binaries = set(os.listdir(folder or ".")) if os.path.isdir(folder or ".") else set()

  def local(match):
    binary = match.group(1).replace("-", "_")
    return os.path.join(folder, binary) if binary in binaries else match.group(0)

  return re.sub(r"\btfbet-([a-z][a-z_-]*[a-z])", local, doc)


def usage_error(error, argv0):
  """Prints a usage error as its message and a one-line hint to --help; exits with 1 (absl's
  own handler prints the whole flag help first, which buries the message)."""
  name = program_name(argv0)
  print(f"{name}: error: {error}", file=sys.stderr)
  print(f"Run `{name} --help` for the flags and examples.", file=sys.stderr)
  sys.exit(getattr(error, "exitcode", None) or 1)


def start(name):
  """Runs the binary ``name`` (a key of BINARIES) on ``sys.argv``: flags, then ``app.run(main)``.

  Defining the flags imports the binary's module but not TensorFlow (its heavy modules load on
  first use, ``tfbet.lazy_modules``), so ``--help`` and flag errors are quick. TensorFlow is
  imported, quietly, only once the flags are parsed and ``main`` starts, and never by a binary
  that reads JSON only. ``--help`` shows the module's docstring and every flag it defines,
  including those defined by the shared modules.
  """
  quiet_tensorflow(sys.argv)
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  binary = importlib.import_module(BINARIES[name])
  defined_before = set(flags.FLAGS)
  binary.define_flags()
  sys.modules["__main__"].__doc__ = usage_text(binary.__doc__, sys.argv[0])  # absl's --help
  for flag_name in sorted(set(flags.FLAGS) - defined_before):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[flag_name])

  def main_with_clear_errors(argv):
    if name not in WITHOUT_TENSORFLOW and verbosity(sys.argv) < 1:
      import_tensorflow_quietly()
    elif name not in WITHOUT_TENSORFLOW:
      importlib.import_module("tensorflow")
    try:
      return binary.main(argv)
    except app.UsageError as error:
      usage_error(error, sys.argv[0])

  def parse_flags(argv):  # absl's parser, with flag errors worded like usage errors
    try:
      return flags.FLAGS(argv)
    except flags.Error as error:
      usage_error(error, argv[0])

  app.run(main_with_clear_errors, flags_parser=parse_flags)


def console_script():
  """The entry point of every console script ``tfbet-<name>`` (setup.py): runs binary <name>."""
  script = os.path.basename(sys.argv[0])
  name = script[len("tfbet-"):].replace("-", "_")
  if not script.startswith("tfbet-") or name not in BINARIES:
    raise SystemExit(f"{script}: not a tfbet binary; they are "
                     + ", ".join(f"tfbet-{b.replace('_', '-')}" for b in BINARIES))
  start(name)
