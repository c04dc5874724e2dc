"""The binaries' start: quiet TensorFlow by default, everything back with --verbosity=1."""
import json
import os
import re
import subprocess
import sys

import pytest

from tfbet.cli import launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("argv,level", [
    (["prog"], -1),
    (["prog", "--verbosity=1"], 1),
    (["prog", "-v", "2", "--x=1"], 2),
    (["prog", "-v=0", "--verbosity", "3"], 3),  # the last one wins, as in absl
    (["prog", "--", "--verbosity=1"], -1),  # after "--" it is an argument, not a flag
    (["prog", "--verbosity=high"], -1),  # absl refuses it itself
])
def test_verbosity_is_read_from_argv_like_absl(argv, level):
  assert launch.verbosity(argv) == level


def _start(*flags):
  """bin/eval without a model: it loads TensorFlow, then refuses (a usage error)."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, "-m", "tfbet.cli.eval", *flags], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300, check=False)


def _noise(stderr):
  pattern = launch._LOAD_NOISE  # pylint: disable=protected-access
  return [line for line in stderr.splitlines() if pattern.match(line)]


def test_a_binary_hides_tensorflows_load_notices_and_verbosity_1_shows_them():
  loud = _start("--verbosity=1")
  if not _noise(loud.stderr):
    pytest.skip("TensorFlow printed no notices while loading on this machine")
  quiet = _start()
  assert "error: give exactly one of run_dir" in quiet.stderr  # the binary ran
  assert not _noise(quiet.stderr)


def test_import_tfbet_loads_tensorflow_only_when_a_module_is_used():
  code = ("import sys, tfbet; print('tensorflow' in sys.modules); "
          "tfbet.WeightClip; print('tensorflow' in sys.modules, 'WeightClip' in vars(tfbet))")
  process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, check=True)
  assert process.stdout.split() == ["False", "True", "True"]


BINARIES = sorted(launch.BINARIES)
# Runs a binary like bin/<name> would and reports, at exit, which flags it defined (absl's own
# left out) and whether TensorFlow was imported.
PROBE = """
import atexit, json, runpy, sys
def report():
  from absl import flags
  own = sorted(flag.name for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
               if not module.startswith("absl.") for flag in module_flags)
  print("PROBE " + json.dumps({"tensorflow": "tensorflow" in sys.modules, "flags": own}),
        file=sys.stderr)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _env():
  """The environment of a binary started from this checkout (not an installed tfbet)."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
  return env


def _probe(binary, *args):
  """(CompletedProcess, report) of bin/<binary> run with ``args`` under PROBE."""
  process = subprocess.run([sys.executable, "-c", PROBE, os.path.join("bin", binary), *args],
                           cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                           check=False)
  lines = [line for line in process.stderr.splitlines() if line.startswith("PROBE ")]
  assert lines, process.stderr[-3000:]
  return process, json.loads(lines[-1][len("PROBE "):])


def _help_flags(help_text):
  return set(re.findall(r"^\s+--(?:\[no\])?(\w+):", help_text, flags=re.MULTILINE))


def test_bin_holds_one_script_per_binary_of_the_table_and_setup_one_console_script(tmp_path):
  assert sorted(os.listdir(os.path.join(ROOT, "bin"))) == BINARIES
  subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                 cwd=ROOT, env=_env(), capture_output=True, timeout=300, check=True)
  with open(tmp_path / "tfbet.egg-info" / "entry_points.txt", encoding="utf-8") as f:
    scripts = re.findall(r"^(tfbet-\S+) = (\S+)$", f.read(), flags=re.MULTILINE)
  assert sorted(scripts) == sorted((f"tfbet-{name.replace('_', '-')}",
                                    "tfbet.cli.launch:console_script") for name in BINARIES)


def _console_script(name, *args):
  """The console script ``name`` (as pip writes it: argv[0] is the script's path) with ``args``."""
  code = ("import sys; from tfbet.cli import launch; "
          f"sys.argv[0] = {os.path.join('/venv/bin', name)!r}; launch.console_script()")
  return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=300, check=False)


def test_a_console_script_starts_the_binary_it_is_named_for_and_another_name_is_refused():
  started = _console_script("tfbet-eval-chips", "--help")
  assert started.stdout.startswith("RErr of a trained model on profiled chip files")
  assert "tfbet-eval-chips --run_dir=runs/mnist_randbet" in started.stdout
  refused = _console_script("tfbet-evaluate", "--help")
  assert refused.returncode == 1
  assert refused.stderr.startswith("tfbet-evaluate: not a tfbet binary; they are tfbet-train, "
                                   "tfbet-eval, tfbet-eval-chips, ")


def test_old_lib_module_names_still_import_and_find_each_name_where_it_moved():
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import eval_chips  # pylint: disable=g-import-not-at-top
  from tfbet.cli import evaluation_run  # pylint: disable=g-import-not-at-top
  from tfbet.cli import model_flags  # pylint: disable=g-import-not-at-top
  from tfbet.cli import reproduce_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import suites  # pylint: disable=g-import-not-at-top
  assert eval_lib.parse_rates(["0.5", "2"]) == [0.005, 0.02]  # bin/eval's own
  assert eval_lib.partial_path("out/e.json") == "out/e.partial.json"
  assert eval_lib.run_resumable is evaluation_run.run_resumable
  assert eval_lib.load_model_and_data is model_flags.load_model_and_data
  assert [chip.name for chip in eval_lib.make_chips("random", [7, 8])] == ["random_7", "random_8"]
  assert reproduce_lib.Suite is suites.Suite  # the suites, then bin/reproduce's driver
  assert reproduce_lib.STAGES == ("all", "train", "evaluate", "headline")
  from tfbet.cli import eval_chips_lib  # pylint: disable=g-import-not-at-top
  assert eval_chips_lib.parse_offsets is eval_chips.parse_offsets
  with pytest.raises(AttributeError, match="tfbet.cli.eval_chips, tfbet.cli.chip_flags; none of "
                                           "them has 'no_such_name'"):
    eval_chips_lib.no_such_name  # pylint: disable=pointless-statement
  with pytest.raises(ImportError):
    from tfbet.cli import no_such_lib  # pylint: disable=g-import-not-at-top,unused-import


@pytest.mark.parametrize("binary", BINARIES)
def test_help_lists_every_flag_the_binary_parses_without_importing_tensorflow(binary):
  process, report = _probe(binary, "--help")
  assert "flags:" in process.stdout, process.stdout + process.stderr
  assert _help_flags(process.stdout) == set(report["flags"])
  assert report["flags"]  # every binary has flags of its own
  assert report["tensorflow"] is False


def test_eval_chips_help_lists_the_shared_model_and_output_flags():
  process, _ = _probe("eval_chips", "--help")
  assert {"run_dir", "model", "output", "plot", "scheme", "test_limit", "gin_module",
          "chip_files"} <= _help_flags(process.stdout)


@pytest.mark.parametrize("binary", BINARIES)
def test_bin_and_the_console_script_show_one_usage_text(binary):
  from_bin, _ = _probe(binary, "--help")
  from_module = subprocess.run([sys.executable, "-m", f"tfbet.cli.{binary}", "--help"],
                               cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
                               check=False)
  doc_of_bin = from_bin.stdout.split("\nflags:\n")[0]
  doc_of_module = from_module.stdout.split("\nflags:\n")[0]
  # Started from bin/, the commands of the text read bin/<name> instead of tfbet-<name>.
  as_console_script = re.sub(r"\bbin/([a-z_]+)", lambda m: "tfbet-" + m.group(1).replace("_", "-"),
                             doc_of_bin)
  assert as_console_script == doc_of_module
  assert f"tfbet-{binary.replace('_', '-')}" in doc_of_module
  assert _help_flags(from_bin.stdout) == _help_flags(from_module.stdout)


def test_usage_text_names_commands_as_the_user_started_them(tmp_path):
  (tmp_path / "eval_chips").write_text("")
  doc = "tfbet-eval-chips --x=1; then tfbet-compare a.json (tfbet-eval-chips again)"
  bin_form = launch.usage_text(doc, str(tmp_path / "eval_chips"))
  assert bin_form == (f"{tmp_path}/eval_chips --x=1; then tfbet-compare a.json "
                      f"({tmp_path}/eval_chips again)")  # no bin/compare next to it
  assert launch.usage_text(doc, "/venv/bin/tfbet-eval-chips") == doc
  assert launch.usage_text(doc, "/repo/tfbet/cli/eval_chips.py") == doc
  assert launch.program_name("/repo/tfbet/cli/eval_chips.py") == "python -m tfbet.cli.eval_chips"


@pytest.mark.parametrize("binary,args,message", [
    ("compare", ["missing.json", "other.json"], "missing.json"),  # refused by main
    ("train", [], "--output_dir"),  # refused while parsing the flags
    ("eval", ["--num_chips=0"], "--num_chips"),
])
def test_a_usage_error_prints_the_message_and_a_hint_not_the_flag_help(binary, args, message):
  process, report = _probe(binary, *args)
  assert process.returncode == 1
  lines = [line for line in process.stderr.splitlines() if not line.startswith("PROBE ")]
  assert lines[0].startswith(f"bin/{binary}: error: ") and message in lines[0]
  assert lines[1:] == [f"Run `bin/{binary} --help` for the flags and examples."]
  assert "flags:" not in process.stdout + process.stderr
  assert report["tensorflow"] is False  # compare never loads it; flag errors come before


# Every example command of every usage text is parsed by the binary's flags (in a process of its
# own, without TensorFlow); its gin files and bindings, and every --gin_param='...' a flag's help
# shows, are then parsed by gin with tfbet's configurables (below, in one process).
EXAMPLES = """
import importlib, json, re, shlex
from absl import flags
from tfbet.cli import launch
importlib.import_module(launch.BINARIES["{binary}"]).define_flags()
FLAGS = flags.FLAGS
# Its commands in every usage text (eval_chips' shows a tfbet-simulate-chips command, too).
docs = [importlib.import_module(module).__doc__ for module in launch.BINARIES.values()]
commands, errors, configs = [], {{}}, []
for line in "\\n".join(docs).replace("\\\\\\n", " ").splitlines():
  command = line.strip()
  command = command[len("nohup "):] if command.startswith("nohup ") else command
  if command.startswith("tfbet-{dashed} "):
    words = shlex.split(command, comments=True)
    for i, word in enumerate(words):
      if word[0] in "<>&|" or word.startswith("2>"):
        words = words[:i]
        break
    commands.append(" ".join(words))
    FLAGS.unparse_flags()
    try:
      FLAGS(words)
    except Exception as error:  # pylint: disable=broad-except
      errors[commands[-1]] = repr(error)
      continue
    if "gin_param" in FLAGS and not FLAGS.gin_module:  # (a user's own files are not here)
      configs.append([list(FLAGS.gin_file), list(FLAGS.gin_param)])
bindings = sorted({{b for flag in FLAGS._flags().values()
                   for b in re.findall(r"--gin_param='([^']*)'", flag.help or "")}})
configs += [[[], [binding]] for binding in bindings]
print("EXAMPLES " + json.dumps({{"commands": commands, "errors": errors, "configs": configs}}))
"""


@pytest.fixture(scope="module")
def examples():
  """{binary: its examples' report}."""
  reports = {}
  for binary in BINARIES:
    code = EXAMPLES.format(binary=binary, dashed=binary.replace("_", "-"))
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in process.stdout.splitlines() if line.startswith("EXAMPLES ")]
    assert lines, process.stderr[-3000:]
    reports[binary] = json.loads(lines[-1][len("EXAMPLES "):])
  return reports


@pytest.mark.parametrize("binary", BINARIES)
def test_every_example_command_of_the_usage_text_parses(examples, binary):
  assert examples[binary]["commands"]
  assert examples[binary]["errors"] == {}


def test_every_gin_config_the_usage_texts_show_is_accepted_by_gin(examples):
  import gin  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  configs = [config for report in examples.values() for config in report["configs"]]
  assert [["experiments/cpu/mnist_clipping.gin"], ["WeightClip.w_max = 0.05"]] in configs
  assert [[], ["train.epochs = 10"]] in configs
  errors = {}
  for gin_files, gin_params in configs:
    try:
      gin_utils.parse(gin_files, gin_params, finalize=False)
    except ValueError as error:
      errors[repr((gin_files, gin_params))] = str(error)
    finally:
      gin.clear_config()
  assert errors == {}


def test_the_old_example_binding_is_refused_so_the_check_can_fail():
  import gin  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,unused-import
  try:
    with pytest.raises(ValueError, match="bind WeightClip.w_max"):
      gin_utils.parse(["experiments/cpu/mnist_clipping.gin"], ["train.w_max = 0.05"],
                      finalize=False)
  finally:
    gin.clear_config()


@pytest.mark.parametrize("binary,extra", [("compare", ["--labels=A,B"]),
                                          ("energy_budget", ["--budgets=1", "--labels=A,B"])])
def test_json_only_binaries_do_their_work_without_tensorflow(tmp_path, binary, extra):
  from tfbet import evaluation  # pylint: disable=g-import-not-at-top
  paths = []
  for name, errors in (("a", (3, 9)), ("b", (2, 4))):
    results = evaluation.Results(
        model={"name": name, "digest": name}, n=100, data_digest="d", clean_errors=1,
        condition_kind="rate", errors={("c", 0.001, 0): errors[0], ("c", 0.01, 0): errors[1]})
    paths.append(results.to_json(str(tmp_path / f"{name}.json")))
  process, report = _probe(binary, *paths, *extra, f"--plot={tmp_path / 'plot.png'}")
  assert process.returncode == 0, process.stderr[-3000:]
  assert (tmp_path / "plot.png").stat().st_size > 0
  assert report["tensorflow"] is False
