"""Logic of bin/eval: RErr of a trained model on random chips at several bit error rates.

Rates are given in percent, like the paper's tables (``--rates=0.01,0.1,0.5,1`` is p = 0.01 %,
0.1 %, 0.5 %, 1 %). The chips are random chips (Sec. 3, App. F) with the fixed seeds
``first_chip_seed + i``, i < num_chips; by default the 50 seeds of
``tfbet.chips.default_chip_seeds()`` (1000..1049), so results of different models are
comparable chip for chip. ``--num_shards`` / ``--shard_index`` split the chips round robin
(``tfbet.evaluation.shard``); ``bin/eval --merge a.json b.json --output all.json`` merges the
shard files exactly. ``--runner`` evaluates the chips on an Apache Beam runner instead
(``tfbet.beam_evaluation``; worker processes on this machine, or a cluster): the same counts.

The model and test data come from a ``bin/train`` run (``--run_dir``: model.h5
and operative_config.gin, so the test set is whitened with the statistics of the training run) or
from ``--model`` plus ``--gin_file`` / ``--gin_param`` that configure ``load_data``.
"""
import contextlib
import functools
import os
import shlex
import sys
import time

from absl import app
from absl import flags

from tfbet import checks
from tfbet import chip_models
from tfbet import evaluation
from tfbet import files
from tfbet import lazy_modules
from tfbet.cli import gin_utils
from tfbet.cli import reporting

# TensorFlow loads when a model does, not for --help (docs/design.md, §2).
memory = lazy_modules.module("tfbet.memory")
quantization = lazy_modules.module("tfbet.quantization")
quantize_configs = lazy_modules.module("tfbet.quantize_configs")
resume = lazy_modules.module("tfbet.cli.resume")
threads = lazy_modules.module("tfbet.threads")
train_lib = lazy_modules.module("tfbet.cli.train_lib")

IN_PROCESS = "in_process"
CHIP_KINDS = ("random", "asymmetric")
# The columns of the paper's CIFAR10 tables (Tab. 1, 2, 4, 8, 9), in %.
DEFAULT_RATES = ("0.01", "0.05", "0.1", "0.5", "1", "1.5")


def define_model_flags(flag_values=flags.FLAGS, result_flags=True):
  """Flags shared by bin/eval and bin/eval_chips: model, data, outputs.

  ``result_flags=False`` leaves out --output, --plot and --delta (the analysis binaries define
  outputs of their own and do not use Prop. 1).
  """
  flags.DEFINE_string(
      "run_dir", None,
      "Output directory of bin/train: its model (model.h5) is evaluated on the "
      "run's test set (its operative_config.gin is parsed first, so data and whitening match "
      "training). "
      "Exclusive with --model.", flag_values=flag_values)
  flags.DEFINE_string(
      "model", None,
      "Path of a Keras model file, HDF5 (.h5) or .keras (read as data, never run: Lambda "
      "layers are refused): a quantized one (as written by bin/train), or a float one with --scheme "
      "(post-training quantization). The "
      "test data is then configured by --gin_file / --gin_param (e.g. "
      "--gin_file=data/mnist.gin). Exclusive with --run_dir.", flag_values=flag_values)
  flags.DEFINE_string(
      "scheme", None,
      "Post-training quantization: quantize the float --model with this preset ("
      "global, normal, asymmetric, unsigned, rquant) before evaluating it. Needs --whiten or "
      "--nowhiten.", flag_values=flag_values)
  flags.DEFINE_integer(
      "precision", None, "Bits per weight (1..8) for --scheme (default 8). Only with --scheme: "
      "a quantized model is evaluated at its own precision, so --precision without --scheme is "
      "refused.", lower_bound=1, upper_bound=8, flag_values=flag_values)
  flags.DEFINE_list(
      "exclude", [],
      "With --scheme: names of layers left in reliable float memory (the results state the "
      "share of parameters in faulty memory).", flag_values=flag_values)
  flags.DEFINE_boolean(
      "whiten", None,
      "Whiten the test images per channel with training-set statistics (as bin/train does) "
      "or, with --nowhiten, give the model pixels in [0, 1]. Default: the run's or gin file's "
      "setting; required with --scheme, so a float model never gets a preprocessing it was not "
      "trained with by accident.", flag_values=flag_values)
  flags.DEFINE_multi_string(
      "gin_file", [],
      "Gin config file(s), absolute or relative to a --gin_search_path or the shipped gin/ "
      "directory, parsed after the run's operative config.", flag_values=flag_values)
  flags.DEFINE_multi_string(
      "gin_param", [], "Gin binding(s) applied after the files, e.g. "
      "--gin_param='load_data.test_batch_size = 500'.", flag_values=flag_values)
  gin_utils.define_flags(flag_values)
  flags.DEFINE_integer(
      "test_limit", None,
      "Evaluate on the first N test examples only (>= 1; default: the run's setting, usually "
      "the whole test set).", lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer(
      "batch_size", None,
      f"Test batch size (in [1, {checks.MAX_BATCH_SIZE}]; default: the run's "
      "load_data.test_batch_size / batch_size).",
      lower_bound=1, upper_bound=checks.MAX_BATCH_SIZE, flag_values=flag_values)
  if result_flags:
    flags.DEFINE_string(
        "output", None,
        "Path of the JSON result file (error counts, see tfbet/evaluation.py); a CSV with the "
        "same counts is written next to it (.csv instead of .json). While the evaluation runs, "
        "the counts of the chips done so far are kept in <output>.partial.json (written after "
        "every chip): the same command, run again after an interruption, resumes from there and "
        "gives the same counts. Checked to be writable before any work starts. While the run "
        "lasts it holds <output>.lock (host and PID, like bin/train's output lock): a second "
        "bin/eval with the same --output is refused, naming the process that holds it.",
        flag_values=flag_values)
    flags.DEFINE_string("plot", None, "Optional path of a PNG plot of the results.",
                        flag_values=flag_values)
    reporting.define_delta_flag(flag_values)
    flags.DEFINE_bool(
        "faulty_state", False,
        "Put the model's non-trainable state (BatchNormalization moving statistics) into faulty "
        "memory too, quantized per tensor like the weights, so chips perturb it; default: it "
        "stays reliable, as in the paper (App. G.1). Needs a per-tensor scheme. The results state "
        "the share of parameters in faulty memory.", flag_values=flag_values)
    flags.DEFINE_bool(
        "per_example", False,
        "Also record which test examples each chip misclassifies (in the JSON, about n/8 bytes per "
        "chip and rate): comparisons of two models (tfbet.paired, bin/reproduce) then measure "
        "their test-set noise. In-process evaluation only.", flag_values=flag_values)
  flags.DEFINE_string(
      "runner", IN_PROCESS,
      f"{IN_PROCESS}: evaluate the chips one after another in this process. Any other value is "
      "an Apache Beam runner (pip install tfbet[beam]) that spreads the chips over its workers "
      "and gives the same counts: DirectRunner (worker processes on this machine, one per CPU "
      "core unless --beam_options say otherwise), FlinkRunner, SparkRunner, DataflowRunner, ... "
      "(see tfbet/beam_evaluation.py).", flag_values=flag_values)
  flags.DEFINE_string(
      "beam_options", "",
      "Only with a Beam --runner: its pipeline options, space-separated as on a command line, "
      "e.g. '--direct_num_workers=2' or '--flink_master=host:8081 "
      "--temp_location=/shared/tmp'. Runners other than DirectRunner need --temp_location, a "
      "folder the workers and this process share.", flag_values=flag_values)
  flags.DEFINE_integer(
      "worker_threads", None,
      "TensorFlow intra- and inter-op threads per process, in [1, 1024]: of this process with "
      f"--runner={IN_PROCESS}, of each worker process with a Beam runner. Default: TensorFlow's "
      "(every core) in this process; on the DirectRunner the cores divided among its worker "
      "processes. The results' metadata records the threads used (worker_threads).",
      flag_values=flag_values)


def define_flags(flag_values=flags.FLAGS):
  """Defines the flags of bin/eval on ``flag_values``."""
  define_model_flags(flag_values)
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
  flags.DEFINE_enum(
      "chip_kind", "random", list(CHIP_KINDS),
      "random: symmetric bit flips (Sec. 3); asymmetric: faults that set (0-to-1, share "
      "--fraction_0to1 of p) or clear (1-to-0) bits, like profiled chips (App. C.1).",
      flag_values=flag_values)
  flags.DEFINE_float(
      "fraction_0to1", 0.5,
      "Only with --chip_kind=asymmetric: share of p due to 0-to-1 faults, in [0, 1].",
      flag_values=flag_values)
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
  rates = []
  for value in checks.bounded_list(values, "rates", checks.MAX_CONDITIONS):
    try:
      percent = float(value)
    except (TypeError, ValueError) as error:
      raise ValueError(f"rates must be numbers in percent, e.g. 0.01,0.1,1; got {value!r}") \
          from error
    if not 0 <= percent < 100:
      raise ValueError(f"rates are in percent and must be in [0, 100), got {value!r}")
    rates.append(percent / 100.0)
  if not rates:
    raise ValueError("rates must not be empty")
  if len(set(rates)) != len(rates):
    raise ValueError(f"rates must be distinct, got {list(values)}")
  return rates


def make_chips(kind, seeds, fraction_0to1=0.5):
  """The chips with the given seeds."""
  if kind == "random":
    return [chip_models.RandomChip(seed) for seed in seeds]
  if kind == "asymmetric":
    return [chip_models.AsymmetricRandomChip(seed, fraction_0to1) for seed in seeds]
  raise ValueError(f"chip kind must be one of {CHIP_KINDS}, got {kind!r}")


def find_model_file(run_dir):
  """The exported model of a bin/train run."""
  path = os.path.join(run_dir, train_lib.MODEL_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"run_dir {run_dir!r} holds no {train_lib.MODEL_FILE}; is it a finished "
                     "bin/train output directory?")
  return path


def load_model_and_data(run_dir=None, model_path=None, gin_files=(), gin_params=(),
                        test_limit=None, batch_size=None, gin_search_paths=(), gin_modules=(),
                        whiten=None):
  """(model, DataSplits, model path) for a bin/train run or a model + gin files.

  ``gin_modules`` (user code a run's config references) are imported before parsing;
  ``whiten`` (None: the configured setting) sets ``load_data.whiten``.
  """
  if (run_dir is None) == (model_path is None):
    raise ValueError("give exactly one of run_dir (a bin/train output directory) and "
                     "model_path (an .h5 or .keras model file)")
  config = None
  if run_dir is not None:
    model_path = find_model_file(run_dir)
    config = os.path.join(run_dir, "operative_config.gin")
    if not os.path.isfile(config):
      raise ValueError(f"run_dir {run_dir!r} lacks operative_config.gin; is it a bin/train "
                       "output directory?")
  elif not os.path.exists(model_path):
    raise ValueError(f"model {model_path!r} does not exist")
  elif not gin_files and not gin_params:
    raise ValueError("with a model path, configure the test data with gin files / bindings "
                     "(e.g. data/mnist.gin)")
  gin_params = list(gin_params)
  if test_limit is not None:
    gin_params.append(f"load_data.test_limit = {int(test_limit)}")
  if batch_size is not None:
    gin_params.append(f"load_data.test_batch_size = {int(batch_size)}")
  if whiten is not None:
    gin_params.append(f"load_data.whiten = {bool(whiten)}")
  # train_lib registers every configurable a bin/train operative config names.
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import train_lib  # pylint: disable=g-import-not-at-top,redefined-outer-name
  # The run's config is checked (and older bindings migrated) first, then the model, both
  # before any data is read.
  gin_utils.parse(gin_files, gin_params, search_paths=gin_search_paths, modules=gin_modules,
                  run_config=config)
  model = train_lib.load_model(model_path)
  data = data_lib.load_data()
  return model, data, model_path


def model_for_evaluation(model, scheme=None, precision=None, exclude=(), whiten=None,
                         faulty_state=False):
  """The quantized model to evaluate: ``model`` itself, or its post-training quantization.

  ``faulty_state`` puts its non-trainable state into faulty memory too
  (``quantize_configs.with_faulty_state``).

  ``precision`` (None: 8) is the bits of ``scheme``.

  Raises ValueError naming the flag to use when a float model lacks --scheme (or --whiten), or a
  quantized one gets --scheme or --precision (it would be evaluated at its own precision).
  """
  quantized = quantize_configs.is_quantized(model)
  if scheme is None:
    if not quantized:
      raise ValueError(f"model {model.name!r} is a float model: pass --scheme=rquant "
                       f"--precision={precision or 8} (any preset) to quantize it after "
                       "training, with --whiten or --nowhiten")
    if precision is not None:
      raise ValueError(
          f"--precision={precision} only goes with --scheme (post-training quantization of a "
          f"float --model); model {model.name!r} is already quantized at "
          f"{memory.layout(model).precision} bits and would be evaluated at those. Drop "
          f"--precision, or quantize a float --model with --scheme=rquant "
          f"--precision={precision} (any preset)")
    if exclude:
      raise ValueError("--exclude only goes with --scheme (post-training quantization)")
    return quantize_configs.with_faulty_state(model) if faulty_state else model
  if quantized:
    raise ValueError(f"model {model.name!r} is already quantized; drop --scheme")
  if whiten is None:
    raise ValueError("with --scheme, say how the float model expects its inputs: --whiten "
                     "(per-channel whitening with training-set statistics) or --nowhiten "
                     "(pixels in [0, 1])")
  return quantize_configs.quantize_model(
      model, quantization.get_scheme(scheme, 8 if precision is None else precision),
      exclude=list(exclude) or None,
      faulty_state=faulty_state)


def load_test_model(scheme=None, precision=None, exclude=(), faulty_state=False, **kwargs):
  """(model to evaluate, test dataset): what each Beam worker loads.

  The model of ``load_model_and_data(**kwargs)``, quantized after training when ``scheme`` is
  given (``model_for_evaluation``).
  """
  import gin  # pylint: disable=g-import-not-at-top
  # A worker in this very process (in-memory runners) parses the same config again.
  with gin.unlock_config():
    gin.clear_config()
    model, data, _ = load_model_and_data(**kwargs)
  model = model_for_evaluation(model, scheme, precision, exclude, kwargs.get("whiten"),
                               faulty_state)
  return model, data.test_dataset()


def limit_threads(flag_values):
  """Applies --worker_threads to this process; call before TensorFlow runs its first op."""
  if flag_values.worker_threads is None:
    return
  try:
    threads.limit(flag_values.worker_threads)
  except (RuntimeError, TypeError, ValueError) as error:
    raise app.UsageError(f"--worker_threads: {error}") from error


def evaluate_chips(flag_values, model, data, chip_list, conditions, offsets, progress,
                   metadata, num_shards=1, shard_index=0):
  """``Results`` of the chips, in this process (resumable, see run_resumable) or on the Beam
  --runner (the same counts; Beam spreads the chips itself, so it takes no shards)."""
  if flag_values.runner == IN_PROCESS:
    if flag_values.beam_options:
      raise app.UsageError(f"--beam_options needs a Beam --runner (not {IN_PROCESS})")
    evaluator = evaluation.Evaluator(model, data.test_dataset())
    metadata = dict(metadata, workers=1, worker_threads=threads.current())
    try:
      return run_resumable(evaluator, chip_list, conditions, flag_values.output,
                           offsets=offsets, progress=progress, metadata=metadata,
                           num_shards=num_shards, shard_index=shard_index,
                           allow_high_rate=True,  # The binaries take rates in percent.
                           per_example=flag_values.per_example)
    except ValueError as error:
      raise app.UsageError(str(error)) from error
  if flag_values.per_example:
    raise app.UsageError(f"--per_example is recorded by in-process evaluation only; drop it or "
                         f"use --runner={IN_PROCESS}")
  if num_shards != 1:
    raise app.UsageError(f"--runner={flag_values.runner} evaluates all chips itself; drop "
                         "--num_shards / --shard_index (they split in-process evaluations)")
  try:
    from tfbet import beam_evaluation  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise app.UsageError(f"--runner={flag_values.runner} needs Apache Beam: pip install "
                         f"tfbet[beam] ({error})") from error
  try:
    options = beam_evaluation.pipeline_options(flag_values.runner,
                                               shlex.split(flag_values.beam_options))
  except ValueError as error:
    raise app.UsageError(f"--runner / --beam_options: {error}") from error
  def absolute(path):  # workers may start in another folder
    return path if path is None or "://" in path else os.path.abspath(path)
  load = functools.partial(
      load_test_model, run_dir=absolute(flag_values.run_dir),
      model_path=absolute(flag_values.model),
      gin_files=tuple(flag_values.gin_file), gin_params=tuple(flag_values.gin_param),
      test_limit=flag_values.test_limit, batch_size=flag_values.batch_size,
      gin_search_paths=tuple(flag_values.gin_search_path),
      gin_modules=tuple(flag_values.gin_module), whiten=flag_values.whiten,
      scheme=flag_values.scheme, precision=flag_values.precision,
      exclude=tuple(flag_values.exclude), faulty_state=flag_values.faulty_state)
  print(f"running {len(chip_list)} work items (one per chip) on Beam's {flag_values.runner}",
        flush=True)
  try:
    resume = None
    if flag_values.output and os.path.exists(partial_path(flag_values.output)):
      resume = evaluation.Results.from_json(partial_path(flag_values.output))
      print(f"resuming from {partial_path(flag_values.output)}: "
            f"{len(set(resume.chips) - {key[0] for key in resume.missing() or ()})} chip(s) "
            "done before", flush=True)
    return beam_evaluation.evaluate(load, chip_list, conditions, offsets, options=options,
                                    metadata=metadata, allow_high_rate=True,
                                    worker_threads=flag_values.worker_threads, resume=resume)
  except beam_evaluation.IncompleteRun as error:
    raise SystemExit(f"ERROR: {incomplete_run_message(error, flag_values.output)}") from error
  except (TypeError, ValueError) as error:
    raise app.UsageError(str(error)) from error


def incomplete_run_message(error, output):
  """One line for a failed Beam run: what is missing, where the rest is kept, how to resume.

  The counts measured go to ``partial_path(output)``, the file an in-process run keeps, so the
  same command run again evaluates only the missing chips.
  """
  message = str(error).split("; the others' counts", 1)[0]
  if error.partial is None:
    return f"{message}; nothing was measured, run the same command again"
  if not output:
    return (f"{message}; the counts of the other chips are lost without --output (with it, "
            "they are kept and the same command resumes)")
  path = partial_path(output)
  error.partial.to_json(path)
  return (f"{message}; the counts of the other {len(error.partial.chips) - len(error.missing)}"
          f" chips are kept in {path}: run the same command again to evaluate only the missing "
          "ones")


def output_paths(output):
  """(json path, csv path) for --output."""
  root, ext = os.path.splitext(output)
  return output, (root if ext.lower() == ".json" else output) + ".csv"


def partial_path(output):
  """Where the counts of the chips done so far are kept while --output is being evaluated."""
  root, ext = os.path.splitext(output)
  return (root if ext.lower() == ".json" else output) + ".partial.json"


def lock_path(output):
  """The lock file a bin/eval holds while it writes --output (as bin/train holds its own)."""
  root, ext = os.path.splitext(output)
  return (root if ext.lower() == ".json" else output) + ".lock"


def check_outputs(flag_values):
  """Fails (UsageError naming the path) unless every output can be written; before any work."""
  paths = list(output_paths(flag_values.output)) + [partial_path(flag_values.output)] \
      if flag_values.output else []
  paths += [flag_values.plot] if flag_values.plot else []
  for path in paths:
    try:
      files.check_writable(path)
    except ValueError as error:
      raise app.UsageError(str(error)) from error


def run_resumable(evaluator, chip_list, conditions, output, **run_args):
  """``evaluator.run`` that keeps its counts in ``partial_path(output)`` after every chip.

  An existing partial file of the same evaluation (same plan, model, test set) is resumed: its
  chips are taken over, the others measured. A partial file of another evaluation is an error
  naming it. Without ``output`` nothing is kept.
  """
  if not output:
    return evaluator.run(chip_list, conditions, **run_args)
  path = partial_path(output)
  resume = None
  if os.path.exists(path):
    resume = evaluation.Results.from_json(path)
    unfinished = {key[0] for key in resume.missing() or ()}
    print(f"resuming from {path}: {len(set(resume.chips) - unfinished)} chip(s) done before",
          flush=True)
  try:
    results = evaluator.run(chip_list, conditions, resume=resume,
                            checkpoint=lambda partial: partial.to_json(path), **run_args)
  except ValueError as error:
    if resume is None or "cannot resume" not in str(error):
      raise
    raise ValueError(f"{path} holds counts of another evaluation ({error}); delete it to start "
                     "over, or choose another --output") from error
  return results


def finish(results, flag_values):
  """Prints and writes the results (show), then removes the partial file: the run is done."""
  show(results, flag_values)
  if flag_values.output and os.path.exists(partial_path(flag_values.output)):
    os.remove(partial_path(flag_values.output))


def write_results(results, output):
  json_path, csv_path = output_paths(output)
  directory = os.path.dirname(os.path.abspath(json_path))
  os.makedirs(directory, exist_ok=True)
  results.to_json(json_path)
  results.to_csv(csv_path)
  return json_path, csv_path


def show(results, flag_values):
  """Prints the table of ``results`` and writes --output / --plot."""
  if results.condition_kind == "rate":
    print(reporting.rates_table(results, flag_values.delta), flush=True)
  else:
    print(reporting.voltages_table(results), flush=True)
  if flag_values.output:
    for path in write_results(results, flag_values.output):
      print(f"wrote {path}")
  if flag_values.plot:
    if results.condition_kind == "rate":
      reporting.plot_rates([results], flag_values.plot)
    else:
      reporting.plot_voltages(results, flag_values.plot)
    print(f"wrote {flag_values.plot}")


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
  show(merged, flag_values)


def main(argv):
  flag_values = flags.FLAGS
  if flag_values.merge:
    check_outputs(flag_values)
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
  check_outputs(flag_values)
  limit_threads(flag_values)
  seeds = [flag_values.first_chip_seed + i for i in range(flag_values.num_chips)]
  num_shard_chips = len(evaluation.shard(seeds, flag_values.num_shards, flag_values.shard_index))
  try:
    model, data, model_path = load_model_and_data(
        flag_values.run_dir, flag_values.model, flag_values.gin_file, flag_values.gin_param,
        flag_values.test_limit, flag_values.batch_size, flag_values.gin_search_path,
        flag_values.gin_module, flag_values.whiten)
    model = model_for_evaluation(model, flag_values.scheme, flag_values.precision,
                                 flag_values.exclude, flag_values.whiten,
                                 flag_values.faulty_state)
  except (FileNotFoundError, ImportError, ValueError) as error:
    raise app.UsageError(str(error)) from error
  chip_list = make_chips(flag_values.chip_kind, seeds, flag_values.fraction_0to1)
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
  results = evaluate_chips(flag_values, model, data, chip_list, rates, (0,),
                           reporting.print_progress, metadata, num_shards=flag_values.num_shards,
                           shard_index=flag_values.shard_index)
  print(f"done in {time.perf_counter() - started:.1f} s", flush=True)
  finish(results, flag_values)


def main_holding_output_lock(argv):
  """``main`` holding ``lock_path(--output)``: a second bin/eval on the same output is refused,
  naming the process that holds it, instead of doing all the work again. A full disk or a
  read-only output ends the run with one line: the counts so far are kept for resuming."""
  flag_values = flags.FLAGS
  if not flag_values.output:
    return main(argv)
  check_outputs(flag_values)
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(resume.OutputLock(None, lock_path(flag_values.output), "--output"))
    except ValueError as error:
      raise app.UsageError(str(error)) from error
    try:
      return main(argv)
    except Exception as error:  # pylint: disable=broad-except  (re-raised unless a write failed)
      failure = files.write_failure(error)
      if failure is None:
        raise
      path, reason = failure
      partial = partial_path(flag_values.output)
      kept = (f"the counts of the chips done so far are kept in {partial}, and the same "
              "command resumes from them" if os.path.exists(partial) else
              "the same command starts it again")
      raise SystemExit(f"cannot write {path or flag_values.output}: {reason}. Once there is "
                       f"space (or permission), {kept}.") from error
