"""Checks that the tests catch deliberate bugs: each mutation below must make its tests fail.

A test that still passes with the bug it is named after cannot protect the numbers users get.
For every mutation this script copies the checkout's tracked files (and the compiled op) into a
temporary directory, replaces one snippet of the code with its mutated form, runs the named tests
there and reports whether they failed (caught) or passed (survived). The snippet must occur
exactly once, so a mutation that no longer matches the code is reported, never skipped.

  python scripts/check_mutations.py            # all mutations, a table at the end
  python scripts/check_mutations.py --only average_is_sum --verbose

Exit status 0 when every mutation is caught, 1 otherwise. It takes minutes (one pytest run per
mutation), so CI does not run it; run it after changing the tests of these modules.
"""
import argparse
import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Mutation:
  name: str
  bug: str  # what a user would get wrong if this bug shipped
  path: str
  original: str
  mutated: str
  tests: tuple  # pytest node ids or files, relative to the checkout


MUTATIONS = (
    Mutation("injection_not_sticky", "RANDBET stops injecting once the loss rises again",
             "tfbet/training.py",
             "tf.logical_or(self.injecting, global_loss < self.threshold(global_loss))",
             "global_loss < self.threshold(global_loss)",
             ("tests/test_training.py",)),
    Mutation("average_is_sum", "gradient_combination='average' takes the summed step",
             "tfbet/training_methods.py",
             "scale = tf.where(injecting, 0.5, 1.0)", "scale = tf.where(injecting, 1.0, 1.0)",
             ("tests/test_training.py",)),
    Mutation("label_smoothing_over_all_classes",
             "label smoothing gives 0.91 / 0.01 (Keras) instead of the paper's 0.9 / 0.1/9",
             "tfbet/training.py",
             "others = tf.cast(tf.shape(y_pred)[-1] - 1, y_pred.dtype)",
             "others = tf.cast(tf.shape(y_pred)[-1], y_pred.dtype)",
             ("tests/test_training.py",)),
    Mutation("symmetric_range_from_max", "the symmetric range is [-max w, max w], not max |w|",
             "tfbet/quantization.py",
             "q_max = tf.reduce_max(tf.abs(w))", "q_max = tf.reduce_max(w)",
             ("tests/test_quantization.py",)),
    Mutation("rounding_half_down", "RQUANT rounds half toward zero (Eq. 3 rounds half up)",
             "tfbet/quantization.py",
             "r = tf.sign(s) * tf.floor(tf.abs(s) + 0.5)",
             "r = tf.sign(s) * tf.ceil(tf.abs(s) - 0.5)",
             ("tests/test_quantization.py",)),
    Mutation("floor_is_truncation", "int_conversion='floor' truncates toward zero",
             "tfbet/quantization.py",
             "    r = tf.floor(s)\n", "    r = tf.sign(s) * tf.floor(tf.abs(s))\n",
             ("tests/test_quantization.py",)),
    Mutation("rerr_denominator_ignores_offsets",
             "RErr of a chip at several offsets divides by n instead of offsets x n",
             "tfbet/evaluation.py",
             "fractions.Fraction(sum(counts), len(counts) * self.n)",
             "fractions.Fraction(sum(counts), self.n)",
             ("tests/test_evaluation.py",)),
    Mutation("prop1_bound_without_n_plus_one", "Prop. 1's excess uses log(n / delta)",
             "tfbet/evaluation.py",
             "math.log((n + 1) / delta)", "math.log(n / delta)",
             ("tests/test_evaluation.py",)),
)


def _copy_checkout(destination):
  """Copies the tracked files and the compiled op of the checkout into ``destination``."""
  tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
  built = [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "tfbet", "_tfbet_ops*"))]
  if not built:
    raise SystemExit("the compiled op tfbet/_tfbet_ops*.so is missing: run scripts/setup.sh")
  for relative in filter(None, tracked + built):
    source = os.path.join(ROOT, relative)
    if os.path.isfile(source):
      target = os.path.join(destination, relative)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copy2(source, target)


def _data_dir():
  """The data directory the checkout uses, so the copy finds the same real MNIST."""
  return os.environ.get("TFBET_DATA_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "data")


def run_mutation(mutation, verbose=False):
  """('caught' | 'survived' | 'stale', seconds) of one mutation."""
  with open(os.path.join(ROOT, mutation.path), encoding="utf-8") as f:
    source = f.read()
  if source.count(mutation.original) != 1:
    return "stale", 0.0  # the snippet is gone or ambiguous: fix the mutation, not the code
  with tempfile.TemporaryDirectory(prefix=f"mutation_{mutation.name}_") as copy:
    _copy_checkout(copy)
    with open(os.path.join(copy, mutation.path), "w", encoding="utf-8") as f:
      f.write(source.replace(mutation.original, mutation.mutated))
    env = dict(os.environ, PYTHONPATH=copy, TFBET_DATA_DIR=_data_dir())
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         *mutation.tests], cwd=copy, env=env, capture_output=True, text=True)
    seconds = time.time() - started
  if verbose:
    print(result.stdout[-3000:])
  return ("caught" if result.returncode == 1 else
          "survived" if result.returncode == 0 else f"error (pytest exit {result.returncode})",
          seconds)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--only", nargs="+", choices=[m.name for m in MUTATIONS],
                      help="run only these mutations (default: all)")
  parser.add_argument("--verbose", action="store_true", help="print the tail of pytest's output")
  args = parser.parse_args()
  rows = []
  for mutation in MUTATIONS:
    if args.only and mutation.name not in args.only:
      continue
    outcome, seconds = run_mutation(mutation, args.verbose)
    rows.append((mutation, outcome))
    print(f"{mutation.name:34s} {outcome:9s} {seconds:6.0f} s  {mutation.path}: {mutation.bug}",
          flush=True)
  missed = [m.name for m, outcome in rows if outcome != "caught"]
  print(f"{len(rows) - len(missed)} of {len(rows)} mutations caught"
        + (f"; not caught: {', '.join(missed)}" if missed else ""))
  return 1 if missed else 0


if __name__ == "__main__":
  sys.exit(main())
