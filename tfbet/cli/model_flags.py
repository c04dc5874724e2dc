"""The model flags of the evaluating binaries, and the model and test data they name.

bin/eval, bin/eval_chips and the analysis binaries (bin/bisect_rate, bin/sensitivity,
bin/weight_noise, bin/diagnose) evaluate one model on its test set. It comes from a ``bin/train``
run (``--run_dir``: model.h5 and operative_config.gin, so the test set is whitened with the
statistics of the training run) or from ``--model`` plus ``--gin_file`` / ``--gin_param`` that
configure ``load_data``; a float model is quantized after training with ``--scheme``.
"""
import os

from absl import app
from absl import flags

from tfbet import checks
from tfbet import lazy_modules
from tfbet.cli import gin_utils
from tfbet.cli import reporting

# TensorFlow loads when a model does, not for --help (docs/design.md, §2).
memory = lazy_modules.module("tfbet.memory")
quantization = lazy_modules.module("tfbet.quantization")
quantize_configs = lazy_modules.module("tfbet.quantize_configs")
threads = lazy_modules.module("tfbet.threads")
training_job = lazy_modules.module("tfbet.cli.training_job")

IN_PROCESS = "in_process"


def define_flags(flag_values=flags.FLAGS, result_flags=True):
  """The model, data, output and runner flags of bin/eval and bin/eval_chips.

  ``result_flags=False`` leaves out --output, --plot, --delta, --faulty_state and --per_example
  (the analysis binaries define outputs of their own and do not use Prop. 1).
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



def find_model_file(run_dir):
  """The exported model of a bin/train run."""
  path = os.path.join(run_dir, training_job.MODEL_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"run_dir {run_dir!r} holds no {training_job.MODEL_FILE}; is it a finished "
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
  # training_job registers every configurable a bin/train operative config names.
  from tfbet import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import training_job  # pylint: disable=g-import-not-at-top,redefined-outer-name
  # The run's config is checked (and older bindings migrated) first, then the model, both
  # before any data is read.
  gin_utils.parse(gin_files, gin_params, search_paths=gin_search_paths, modules=gin_modules,
                  run_config=config)
  model = training_job.load_model(model_path)
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


def load(flag_values):
  """(model to evaluate, DataSplits, model path) as the model flags ``flag_values`` say, in a
  process whose thread budget (--worker_threads) is applied first."""
  limit_threads(flag_values)
  model, data, model_path = load_model_and_data(
      flag_values.run_dir, flag_values.model, flag_values.gin_file, flag_values.gin_param,
      flag_values.test_limit, flag_values.batch_size, flag_values.gin_search_path,
      flag_values.gin_module, flag_values.whiten)
  faulty_state = "faulty_state" in flag_values and flag_values.faulty_state
  model = model_for_evaluation(model, flag_values.scheme, flag_values.precision,
                               flag_values.exclude, flag_values.whiten, faulty_state)
  return model, data, model_path
