"""The binaries' start: quiet TensorFlow by default, everything back with --verbosity=1."""
import os
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


def _help(*flags):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  return subprocess.run([sys.executable, "-m", "tfbet.cli.compare", "--help", *flags], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300, check=False)


def _noise(stderr):
  pattern = launch._LOAD_NOISE  # pylint: disable=protected-access
  return [line for line in stderr.splitlines() if pattern.match(line)]


def test_a_binary_hides_tensorflows_load_notices_and_verbosity_1_shows_them():
  loud = _help("--verbosity=1")
  if not _noise(loud.stderr):
    pytest.skip("TensorFlow printed no notices while loading on this machine")
  quiet = _help()
  assert "Several models' result files" in quiet.stdout  # the module's own usage text
  assert not _noise(quiet.stderr)


def test_import_tfbet_loads_tensorflow_only_when_a_module_is_used():
  code = ("import sys, tfbet; print('tensorflow' in sys.modules); "
          "tfbet.WeightClip; print('tensorflow' in sys.modules, 'WeightClip' in vars(tfbet))")
  process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, check=True)
  assert process.stdout.split() == ["False", "True", "True"]
