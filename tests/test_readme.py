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
