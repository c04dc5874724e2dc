"""The README's library example runs as printed (on a few images, one epoch, two chips)."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The only changes to the printed code: a small run.
SMALL_RUN = (
    ('load_data("mnist", batch_size=128)',
     'load_data("mnist", batch_size=64, train_limit=256, test_limit=128)'),
    ("epochs = 20", "epochs = 1"),
    ("default_chip_seeds(10)", "default_chip_seeds(2)"),
)


def library_example():
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  section = readme[readme.index("## Using the library"):]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_library_example_trains_and_evaluates_on_chips(real_mnist):  # pylint: disable=unused-argument
  code = library_example()
  for printed, small in SMALL_RUN:
    assert code.count(printed) == 1, printed
    code = code.replace(printed, small)
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  error = re.search(r"clean test error ([0-9.]+)", result.stdout)
  assert error and 0.0 <= float(error.group(1)) <= 1.0, result.stdout
  rerrs = re.findall(r"p = ([0-9.]+) %: RErr ([0-9.]+) \+- ([0-9.]+) %", result.stdout)
  assert [p for p, _, _ in rerrs] == ["0.1", "1"], result.stdout
  assert all(0.0 <= float(mean) <= 100.0 for _, mean, _ in rerrs)


def test_setup_prints_a_line_per_step_and_keeps_pip_quiet(tmp_path):
  # A copy of the script in a checkout whose .venv holds a stand-in python that logs its
  # arguments, so the steps run in seconds and install nothing.
  (tmp_path / "scripts").mkdir()
  with open(os.path.join(ROOT, "scripts", "setup.sh")) as f:
    (tmp_path / "scripts" / "setup.sh").write_text(f.read())
  venv_bin = tmp_path / ".venv" / "bin"
  venv_bin.mkdir(parents=True)
  log = tmp_path / "calls.txt"
  (venv_bin / "python").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
  (venv_bin / "python").chmod(0o755)
  (venv_bin / "activate").write_text(f'PATH="{venv_bin}:$PATH"\n')
  done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], capture_output=True,
                        text=True, timeout=60, check=False)
  assert done.returncode == 0, done.stderr
  steps = [line.split("] ", 1)[1] for line in done.stdout.splitlines()
           if line.startswith("[setup ")]
  assert [step.split()[0] for step in steps] == [
      "upgrading", "installing", "building", "checking", "done"]
  pip_calls = [line for line in log.read_text().splitlines() if line.startswith("-m pip")]
  assert len(pip_calls) == 3 and all("--quiet" in call for call in pip_calls)


def test_readme_commands_write_their_outputs_under_runs():
  with open(os.path.join(ROOT, "README.md")) as f:
    readme = f.read()
  first_steps = readme[:readme.index("## Using the library")]
  outputs = re.findall(r"--(?:plot|output|output_dir)=(\S+?)[`\s]", first_steps)
  assert outputs and all(path.startswith("runs/") for path in outputs), outputs
