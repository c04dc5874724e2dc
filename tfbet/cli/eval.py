r"""RErr of a trained model on random chips at several bit error rates (Sec. 5, Fig. 2, App. F).

Examples:
  tfbet-eval --run_dir=runs/mnist_randbet --rates=0.01,0.1,0.5,1 --output=runs/eval/randbet.json \
      --plot=runs/eval/randbet.png
  # 50 chips in 2 shards (e.g. on two machines), then merged exactly:
  tfbet-eval --run_dir=runs/r --num_shards=2 --shard_index=0 --output=runs/eval/s0.json
  tfbet-eval --run_dir=runs/r --num_shards=2 --shard_index=1 --output=runs/eval/s1.json
  tfbet-eval --merge runs/eval/s0.json runs/eval/s1.json --output=runs/eval/all.json
  # 1000 chips on Apache Beam's DirectRunner with 4 worker processes (pip install tfbet[beam]):
  tfbet-eval --run_dir=runs/r --num_chips=1000 --runner=DirectRunner \
      --beam_options=--direct_num_workers=4 --output=runs/eval/all.json
  # --worker_threads=N: TensorFlow threads of this process (in_process) or of each Beam worker
  # (default there: the cores divided among the workers). A failed Beam run keeps the counts
  # measured in <output>.partial.json; the same command then evaluates only the missing chips.
Rates are in percent; see tfbet/cli/eval.py. While it runs, <output>.lock (host and PID)
keeps a second evaluation into the same --output out; a full disk or a read-only output ends the
run with one line, and the same command resumes from the chips done.
"""
import contextlib
import os
import sys
import time

from absl import app
from absl import flags

from tfbet import checks
from tfbet import chip_models
from tfbet import evaluation
from tfbet import files
from tfbet import lazy_modules
from tfbet.cli import chip_flags
from tfbet.cli import evaluation_run
from tfbet.cli import launch
from tfbet.cli import model_flags
from tfbet.cli import reporting

resume = lazy_modules.module("tfbet.cli.resume")  # TensorFlow: not for --help

# The columns of the paper's CIFAR10 tables (Tab. 1, 2, 4, 8, 9), in %.
DEFAULT_RATES = ("0.01", "0.05", "0.1", "0.5", "1", "1.5")


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/eval on ``flag_values``."""
  model_flags.define_flags(flag_values)
  flags.DEFINE_list(
      "rates", list(DEFAULT_RATES),
      "Comma-separated bit error rates p in PERCENT, as in the paper's tables: "
      "--rates=0.01,0.1,0.5,1 means p = 0.01 %, 0.1 %, 0.5 % and 1 %. Each in [0, 100); at "
      f"most {checks.MAX_CONDITIONS} rates.",
      flag_values=flag_values)
  flags.DEFINE_integer(
      "num_chips", chip_models.DEFAULT_NUM_CHIPS,
      "Number of random chips (App. F: 50), the seeds first_chip_seed + 0 .. num_chips - 1; "
      f"at most {checks.MAX_CHIPS}.",
      lower_bound=1, upper_bound=checks.MAX_CHIPS, flag_values=flag_values)
  flags.DEFINE_integer(
      "first_chip_seed", chip_models.FIRST_EVALUATION_SEED,
      "Seed of the first chip. The default gives tfbet.chips.default_chip_seeds(): "
      f"{chip_models.FIRST_EVALUATION_SEED}, {chip_models.FIRST_EVALUATION_SEED + 1}, ... "
      "fixed for all experiments, so every model meets the same bit errors. Chip seeds are in "
      "[0, 2**63).",
      lower_bound=0,
      flag_values=flag_values)
  chip_flags.define_flags(flag_values)
  flags.DEFINE_integer("num_shards", 1, "Split the chips into this many shards (round robin); "
                       f"at most {checks.MAX_SHARDS}.", lower_bound=1,
                       upper_bound=checks.MAX_SHARDS, flag_values=flag_values)
  flags.DEFINE_integer("shard_index", 0, "Evaluate only this shard, in [0, num_shards).",
                       lower_bound=0, flag_values=flag_values)
  flags.DEFINE_bool(
      "merge", False,
      "Merge mode: bin/eval --merge a.json b.json ... --output all.json merges the result files "
      "given as arguments (shards of one evaluation), prints the table and, with --plot, plots. "
      "The files must be every shard of one evaluation (same model, test set, chips, rates and "
      "--num_shards), each once and complete; otherwise the merge fails naming the file and "
      "what differs.", flag_values=flag_values)
  flags.DEFINE_bool(
      "allow_partial", False,
      "With --merge: accept missing shards or incomplete shard files. The merged result then "
      "says which counts are missing (a PARTIAL line in the table, metadata 'partial' in the "
      "JSON); its statistics cover only the chips measured.", flag_values=flag_values)


def parse_rates(values):
  """Rates given in percent (strings or numbers) -> fractions, validated and distinct."""
  return checks.percentages(values, "rates", 0, 100, high_included=False,
                            example=", e.g. 0.01,0.1,1")


def lock_path(output):
  """The lock file a bin/eval holds while it writes --output (as bin/train holds its own)."""
  root, ext = os.path.splitext(output)
  return (root if ext.lower() == ".json" else output) + ".lock"


def _merge_main(argv, flag_values):
  paths = argv[1:]
  if not paths:
    raise app.UsageError("--merge needs result files as arguments: bin/eval --merge a.json "
                         "b.json --output all.json")
  if not flag_values.output:
    raise app.UsageError("--merge needs --output (the merged JSON file)")
  try:
    merged = evaluation.merge([evaluation.Results.from_json(path) for path in paths],
                              sources=paths, allow_partial=flag_values.allow_partial)
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  merged.metadata["merged_from"] = [os.path.abspath(path) for path in paths]
  missing = merged.describe_missing()
  if missing:
    merged.metadata["partial"] = missing
    print(f"WARNING: partial merge (--allow_partial): {missing}", file=sys.stderr, flush=True)
  evaluation_run.show(merged, flag_values)


def _evaluate(argv):
  """RErr on random chips (or --merge of shard files): bin/eval without its output lock.

  Rates are given in percent, like the paper's tables (``--rates=0.01,0.1,0.5,1`` is p = 0.01 %,
  0.1 %, 0.5 %, 1 %). The chips are random chips (Sec. 3, App. F) with the fixed seeds
  ``first_chip_seed + i``, i < num_chips; by default the 50 seeds of
  ``tfbet.chips.default_chip_seeds()`` (1000..1049), so results of different models are
  comparable chip for chip. ``--num_shards`` / ``--shard_index`` split the chips round robin
  (``tfbet.evaluation.shard``); ``--merge`` merges the shard files exactly. ``--runner``
  evaluates the chips on an Apache Beam runner instead (``tfbet.cli.evaluation_run``): the same
  counts. The model and its test data are those of the model flags (``tfbet.cli.model_flags``).
  """
  flag_values = flags.FLAGS
  if flag_values.merge:
    evaluation_run.check_outputs(flag_values)
    return _merge_main(argv, flag_values)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]} (result files only go with --merge)")
  if flag_values.allow_partial:
    raise app.UsageError("--allow_partial only goes with --merge")
  if flag_values.shard_index >= flag_values.num_shards:
    raise app.UsageError(f"--shard_index must be in [0, {flag_values.num_shards - 1}], got "
                         f"{flag_values.shard_index}")
  if flag_values.shard_index >= flag_values.num_chips:
    raise app.UsageError(f"--shard_index={flag_values.shard_index} selects no chips: "
                         f"--num_chips={flag_values.num_chips} chips fill only shards 0.."
                         f"{flag_values.num_chips - 1}; use --num_shards <= --num_chips")
  if not 0 <= flag_values.fraction_0to1 <= 1:
    raise app.UsageError(f"--fraction_0to1 must be in [0, 1], got {flag_values.fraction_0to1}")
  try:
    rates = parse_rates(flag_values.rates)
  except ValueError as error:
    raise app.UsageError(f"--rates: {error}") from error
  last_seed = flag_values.first_chip_seed + flag_values.num_chips - 1
  if last_seed > 2**63 - 1:
    raise app.UsageError(f"--first_chip_seed + --num_chips - 1 = {last_seed} is beyond the "
                         f"largest chip seed 2**63 - 1; use --first_chip_seed <= "
                         f"{2**63 - flag_values.num_chips}")
  evaluation_run.check_outputs(flag_values)
  seeds = [flag_values.first_chip_seed + i for i in range(flag_values.num_chips)]
  num_shard_chips = len(evaluation.shard(seeds, flag_values.num_shards, flag_values.shard_index))
  try:
    model, data, model_path = model_flags.load(flag_values)
  except (FileNotFoundError, ImportError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  chip_list = chip_flags.make_chips(flag_values.chip_kind, seeds, flag_values.fraction_0to1)
  metadata = {
      "tool": "bin/eval", "model_path": os.path.abspath(model_path),
      "run_dir": os.path.abspath(flag_values.run_dir) if flag_values.run_dir else None,
      "chip_kind": flag_values.chip_kind, "num_chips": flag_values.num_chips,
      "first_chip_seed": flag_values.first_chip_seed, "num_shards": flag_values.num_shards,
      "shard_index": flag_values.shard_index, "rates_percent": [100 * r for r in rates],
      "post_training_scheme": flag_values.scheme, "whiten": flag_values.whiten,
      "faulty_state": flag_values.faulty_state,
  }
  if flag_values.chip_kind == "asymmetric":
    metadata["fraction_0to1"] = flag_values.fraction_0to1
  print(f"evaluating {num_shard_chips} chips (shard {flag_values.shard_index + 1}/"
        f"{flag_values.num_shards} of {flag_values.num_chips}) at p = "
        f"{', '.join(f'{100 * r:g}' for r in rates)} % on {data.name}", flush=True)
  started = time.perf_counter()
  results = evaluation_run.evaluate_chips(
      flag_values, model, data, chip_list, rates, (0,), reporting.print_progress, metadata,
      num_shards=flag_values.num_shards, shard_index=flag_values.shard_index)
  print(f"done in {time.perf_counter() - started:.1f} s", flush=True)
  evaluation_run.finish(results, flag_values)


def main(argv):
  """Evaluates (or merges) holding ``lock_path(--output)``: a second bin/eval on the same output
  is refused, naming the process that holds it, instead of doing all the work again. A full
  disk or a read-only output ends the run with one line: the counts so far are kept for
  resuming."""
  flag_values = flags.FLAGS
  if not flag_values.output:
    return _evaluate(argv)
  evaluation_run.check_outputs(flag_values)
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(resume.OutputLock(None, lock_path(flag_values.output), "--output"))
    except ValueError as error:
      raise app.UsageError(str(error)) from error
    try:
      return _evaluate(argv)
    except Exception as error:  # pylint: disable=broad-except  (re-raised unless a write failed)
      failure = files.write_failure(error)
      if failure is None:
        raise
      path, reason = failure
      partial = evaluation_run.partial_path(flag_values.output)
      kept = (f"the counts of the chips done so far are kept in {partial}, and the same "
              "command resumes from them" if os.path.exists(partial) else
              "the same command starts it again")
      raise SystemExit(f"cannot write {path or flag_values.output}: {reason}. Once there is "
                       f"space (or permission), {kept}.") from error


if __name__ == "__main__":  # python -m tfbet.cli.eval
  launch.start("eval")
