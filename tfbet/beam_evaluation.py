"""Chip evaluation on Apache Beam: the counts of ``Evaluator.run`` on any Beam runner.

RErr is an average over chips, and Prop. 1 tightens only with many of them; this module spreads
the chips over the workers of a Beam runner (the DirectRunner's processes on one machine, or
Flink, Spark, Dataflow on a cluster) and gives the same ``tfbet.results.Results``, count for
count, as the in-process evaluation.

* A work item is one chip with its conditions and offsets (``WorkItem``, planned by
  ``tfbet.evaluation_plan.make_plan`` exactly as in-process).
* Each worker loads the model and the test set once (``DoFn.setup``, through the picklable
  ``load`` callable), counts its clean errors and, per item, the errors at every
  (condition, offset); it emits one partial ``Results`` per item.
* Each worker runs TensorFlow with a thread budget (``worker_threads``, ``tfbet.threads``): on
  the multi-process DirectRunner the machine's cores divided among the workers by default, so
  two workers on two cores do not fight over them. The threads the workers used are recorded in
  the result's metadata (``worker_threads``, with ``workers``: how many processes measured;
  both absent in results of older versions).
* A ``CombineFn`` keeps the counts only, {(chip, condition, offset): errors} and the header they
  share (model, test set, clean count), so its memory grows with the plan's entries, not with
  the number of parts; it refuses a (chip, condition, offset) seen twice and parts from another
  model, test set or clean count. Cluster runners (Dataflow, Flink, Spark) and the
  BundleBasedDirectRunner retry a failed bundle and drop the output of the failed attempt, so a
  retry cannot count twice; if one ever did, the merge fails instead of averaging a count twice.
* The multi-process DirectRunner (Beam's FnApiRunner) does not retry: a failing item or a lost
  worker process fails the whole pipeline. So every worker also keeps the counts it has in small
  files next to the result (every ``checkpoint_seconds``); when a pipeline fails, ``evaluate``
  reads them, runs a new pipeline for the chips still missing (``retries`` times) and otherwise
  raises ``IncompleteRun``, which holds the counts measured and names the missing chips; given
  back as ``resume`` they are taken over, as ``Evaluator.run`` resumes.
* The merged counts are written as a result JSON to a path that workers and the launching process
  both reach (the runner's ``--temp_location``, or a local temporary folder for the direct
  runners), read back and checked to hold every planned (chip, condition, offset) exactly.

Needs the optional dependency ``apache-beam`` (``pip install tfbet[beam]``).
"""
import collections
import contextlib
import json
import multiprocessing
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid

from absl import logging
import apache_beam as beam
from apache_beam.options import pipeline_options as beam_options
from apache_beam.runners import runner as beam_runner
import tensorflow as tf

from tfbet import checks
from tfbet import evaluation
from tfbet import evaluation_plan
from tfbet import results as results_lib
from tfbet import memory
from tfbet import threads

# Runner classes that run in (or next to) this process, where a local temporary folder is shared;
# DirectRunner is a SwitchingDirectRunner.
LOCAL_RUNNERS = ("SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner")
RESULT_FILE_PREFIX = "tfbet_beam_eval_"
# The fields every part of one evaluation shares (checked equal when parts are merged).
HEADER = ("model", "n", "data_digest", "clean_errors", "condition_kind")

WorkItem = collections.namedtuple("WorkItem", ["chip", "conditions", "offsets", "condition_kind"])
WorkItem.__doc__ = "One chip evaluated at every condition x offset by one worker."


def work_items(chips, conditions=None, offsets=(0,), allow_high_rate=False):
  """(plan, the ``WorkItem`` of every chip); arguments and checks as in ``Evaluator.run``."""
  plan, work = evaluation_plan.make_plan(chips, conditions, offsets,
                                         allow_high_rate=allow_high_rate)
  kind = evaluation_plan.condition_kind([chip for chip, _, _ in work])
  return plan, [WorkItem(chip, tuple(conds), tuple(offs), kind) for chip, conds, offs in work]


class EvaluateChips(beam.DoFn):
  """Worker: loads model and test set once, emits the counts of each item as a result dict.

  With ``worker_threads`` it first limits TensorFlow in its process to that many threads. With
  ``parts_folder`` it also keeps the counts it has there (a file every ``checkpoint_seconds``,
  and at the end of each bundle), so a failed pipeline loses only what came after.
  """

  def __init__(self, load, worker_threads=None, parts_folder=None, checkpoint_seconds=5.0):
    super().__init__()
    self._load = load
    self._worker_threads = worker_threads
    self._parts_folder = parts_folder
    self._checkpoint_seconds = checkpoint_seconds
    self._evaluator = None
    self._clean_errors = None
    self._pending = []
    self._kept_at = 0.0

  def setup(self):
    if self._worker_threads is not None:
      threads.limit(self._worker_threads)
    model, dataset = self._load()
    self._evaluator = evaluation.Evaluator(model, dataset)
    self._clean_errors = self._evaluator.clean_errors()

  def start_bundle(self):
    self._pending = []
    self._kept_at = time.monotonic()

  def process(self, item):
    started = time.perf_counter()
    evaluator = self._evaluator
    part = results_lib.Results(
        model=evaluator.describe_model(), n=evaluator.n, data_digest=evaluator.data_digest,
        clean_errors=self._clean_errors, condition_kind=item.condition_kind,
        chips={item.chip.name: item.chip.describe()},
        metadata={"worker": f"{socket.gethostname()}:{os.getpid()}",
                  "worker_threads": threads.current()})
    try:
      for condition in item.conditions:
        for offset in item.offsets:
          part.add(item.chip.name, condition, offset,
                   # The plan checked the rates (work_items).
                   evaluator.chip_errors(item.chip, condition, offset, allow_high_rate=True))
    finally:
      memory.clear_masks(evaluator.layout)
    beam.metrics.Metrics.counter("tfbet", "chips_evaluated").inc()
    logging.info("chip %s: %d counts in %.1f s (pid %d)", item.chip.name, len(part.errors),
                 time.perf_counter() - started, os.getpid())
    record = part.to_dict()
    if self._parts_folder:
      self._pending.append(record)
      if time.monotonic() - self._kept_at >= self._checkpoint_seconds:
        self._keep()
    yield record

  def finish_bundle(self):
    self._keep()

  def _keep(self):
    """Writes the pending parts to one new file in the parts folder (atomically)."""
    if self._pending:
      path = os.path.join(self._parts_folder, f"{uuid.uuid4().hex}.json")
      with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(json.dumps(self._pending))
      tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
      self._pending = []
    self._kept_at = time.monotonic()


class Counts:
  """The accumulator of ``MergeResults``: the header the parts share and their counts only.

  ``errors`` is {(chip, condition, offset): errors}; ``workers`` and ``worker_threads`` name the
  worker processes and the thread budgets that measured them.
  """

  def __init__(self):
    self.header = None
    self.errors = {}
    self.workers = set()
    self.worker_threads = set()

  def add_header(self, header, what):
    if self.header is None:
      self.header = header
      return
    for field in HEADER:
      if header[field] != self.header[field]:
        raise ValueError(f"{what} has {field} {header[field]!r}, another has "
                         f"{self.header[field]!r}: the workers did not load the same model and "
                         "test set")

  def add_errors(self, errors, condition_kind):
    for key, count in errors.items():
      if key in self.errors:
        raise ValueError(f"duplicate entry for chip {key[0]!r}, {condition_kind} {key[1]}, "
                         f"offset {key[2]}")
      self.errors[key] = count

  def add_part(self, record):
    """Adds one work item's result dict (checked by ``Results.from_dict``)."""
    part = results_lib.Results.from_dict(record, source="work item")
    self.add_header({field: getattr(part, field) for field in HEADER},
                    f"work item of chips {sorted(part.chips)}")
    self.add_errors(part.errors, part.condition_kind)
    self.workers.add(part.metadata.get("worker"))
    self.worker_threads.add(part.metadata.get("worker_threads"))

  def add_counts(self, other):
    if other.header is not None:
      self.add_header(other.header, "a worker's part")
      self.add_errors(other.errors, other.header["condition_kind"])
    self.workers |= other.workers
    self.worker_threads |= other.worker_threads

  def results(self, plan):
    """The ``Results`` of these counts under ``plan`` (None when nothing was counted)."""
    if self.header is None:
      return None
    return results_lib.Results(
        **self.header, errors=self.errors, plan=plan,
        chips={entry["name"]: entry["chip"] for entry in plan["chips"]})


class MergeResults(beam.CombineFn):
  """Combines the work items' result dicts into a ``Counts``, returned as a result dict.

  Every part must come from the same model, test set and clean count (checked against the
  first); a (chip, condition, offset) counted twice and any count outside the plan are refused.
  The result lists every chip of the plan; entries are written sorted, so a complete result is
  the in-process one, byte for byte. Its metadata says which threads the workers used.
  """

  def __init__(self, plan):
    super().__init__()
    self._plan = plan

  def create_accumulator(self):
    return Counts()

  def add_input(self, accumulator, part):
    accumulator.add_part(part)
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = Counts()
    for accumulator in accumulators:
      merged.add_counts(accumulator)
    return merged

  def extract_output(self, accumulator):
    results = accumulator.results(self._plan)
    if results is None:
      raise ValueError("no work item produced counts")
    results.metadata = {"workers": sorted(accumulator.workers - {None}),
                        "worker_threads": sorted(t for t in accumulator.worker_threads
                                                 if t is not None)}
    return results.to_dict()


def _worker_metadata(counts):
  """{"workers": how many processes measured, "worker_threads": their thread budget (a list
  when they differ)} for the metadata of the results."""
  budgets = sorted(t for t in counts.worker_threads if t is not None)
  return {"workers": len(counts.workers - {None}),
          "worker_threads": budgets[0] if len(budgets) == 1 else budgets}


def _write_result(record, path):
  results_lib.Results.from_dict(record, source="merged counts").to_json(path)


def build_pipeline(pipeline, load, plan, items, result_path, worker_threads=None,
                   parts_folder=None, checkpoint_seconds=5.0):
  """Adds the evaluation to ``pipeline``: items -> counts -> one merged result JSON."""
  return (pipeline
          | "WorkItems" >> beam.Create(items)
          # Redistribute the items, so a runner spreads them over its workers instead of fusing
          # them into the single bundle that created them.
          | "Spread" >> beam.Reshuffle()
          | "Evaluate" >> beam.ParDo(EvaluateChips(load, worker_threads, parts_folder,
                                                   checkpoint_seconds))
          | "Merge" >> beam.CombineGlobally(MergeResults(plan)).without_defaults()
          | "Write" >> beam.Map(_write_result, result_path))


def runner_class(runner):
  """Class name of the Beam runner called ``runner``; ValueError (naming the valid ones) if none."""
  if not runner or not isinstance(runner, str):
    raise ValueError(f"runner must be a Beam runner name such as DirectRunner, got {runner!r}")
  return type(beam_runner.create_runner(runner)).__name__


def pipeline_options(runner, args=()):
  """``PipelineOptions`` for ``runner`` plus command-line style ``args``; unknown args refused.

  The DirectRunner defaults to one worker process per CPU core (``--direct_running_mode=
  multi_processing --direct_num_workers=0``) unless ``args`` set these, and runs on Beam's
  FnApiRunner: Beam's DirectRunner would first try its Prism runner, a separate binary it
  downloads from the internet, while the FnApiRunner runs batch pipelines in the worker
  processes these options ask for, offline. Its workers log warnings and errors only, unless
  ``args`` set ``--default_sdk_harness_log_level``.
  """
  args = list(args)
  kind = runner_class(runner)
  if any(a.startswith("--runner") for a in args):
    raise ValueError(f"give the runner once, as runner, not in the pipeline options {args}")
  if kind == "SwitchingDirectRunner":
    runner = "FnApiRunner"
    if not any(a.startswith("--direct_running_mode") for a in args):
      args.append("--direct_running_mode=multi_processing")
    if not any(a.startswith("--direct_num_workers") for a in args):
      args.append("--direct_num_workers=0")
    if not any(a.startswith("--default_sdk_harness_log_level") for a in args):
      args.append("--default_sdk_harness_log_level=WARNING")  # the workers' INFO lines: noise
  options = beam_options.PipelineOptions(args + [f"--runner={runner}"])
  unknown = sorted(set(options.get_all_options(retain_unknown_options=True))
                   - set(options.get_all_options()))
  if unknown:
    raise ValueError(f"unknown Beam pipeline options {unknown} in {args}")
  return options


def local_worker_processes(options):
  """How many worker processes the multi-process DirectRunner starts here (None: other runners)."""
  standard = options.view_as(beam_options.StandardOptions)
  if runner_class(standard.runner or "DirectRunner") not in ("SwitchingDirectRunner",
                                                             "FnApiRunner"):
    return None
  direct = options.view_as(beam_options.DirectOptions)
  if direct.direct_running_mode != "multi_processing":
    return None
  return direct.direct_num_workers or multiprocessing.cpu_count()  # 0: Beam's one per core


def default_worker_threads(options):
  """The thread budget of each worker: this machine's cores divided among the multi-process
  DirectRunner's workers; None (TensorFlow's default) for other runners."""
  workers = local_worker_processes(options)
  return None if workers is None else threads.share(workers)


class IncompleteRun(RuntimeError):
  """The pipeline failed, its retries too. ``partial``: the ``Results`` of the chips measured
  (None if none), to give back to ``evaluate`` as ``resume``; ``missing``: the other chips."""

  def __init__(self, message, partial, missing):
    super().__init__(message)
    self.partial = partial
    self.missing = missing


def _cause(error):
  """The last line of a runner's error (Beam puts the worker's traceback before it)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  text = lines[-1] if lines else type(error).__name__
  return text if len(text) <= 300 else text[:297] + "..."


@contextlib.contextmanager
def _one_line_per_thread_error():
  """While a pipeline runs, an error that ends one of the runner's threads (e.g. when a worker
  process is lost) is logged as one line instead of a traceback; the pipeline's own error
  still reaches the caller."""
  previous = threading.excepthook

  def log_line(args):
    logging.warning("Beam thread %s ended: %s: %s", args.thread.name if args.thread else "?",
                    args.exc_type.__name__, _cause(args.exc_value))

  threading.excepthook = log_line
  try:
    yield
  finally:
    threading.excepthook = previous


def _read_kept_parts(folder, counts):
  """Adds the parts the workers of a failed pipeline kept in ``folder`` to ``counts``; a part
  kept twice (a retried bundle) must agree with itself."""
  if not tf.io.gfile.exists(folder):
    return
  for name in sorted(tf.io.gfile.listdir(folder)):
    if not name.endswith(".json"):
      continue  # a write that did not finish
    with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
      records = json.loads(f.read())
    for record in records:
      part = Counts()
      part.add_part(record)
      for key, errors in list(part.errors.items()):
        if key in counts.errors:
          if counts.errors[key] != errors:
            raise ValueError(f"two attempts counted {errors} and {counts.errors[key]} errors for "
                             f"{key}: the workers are not deterministic")
          del part.errors[key]
      counts.add_counts(part)


def _take_over(resume, plan, counts):
  """Adds the complete chips of ``resume`` (an earlier run of the same plan) to ``counts``."""
  if not isinstance(resume, results_lib.Results):
    raise TypeError(f"resume must be tfbet.evaluation.Results, got {type(resume).__name__}")
  if resume.plan != plan:
    raise ValueError("cannot resume: the earlier results have another plan (chips, "
                     "conditions, offsets or shards)")
  missing = {key[0] for key in resume.missing()}
  counts.add_header({field: getattr(resume, field) for field in HEADER}, "resume")
  counts.add_errors({key: errors for key, errors in resume.errors.items()
                     if key[0] not in missing}, resume.condition_kind)


def evaluate(load, chips, conditions=None, offsets=(0,), options=None, metadata=None,
             allow_high_rate=False, worker_threads=None, resume=None, retries=1,
             checkpoint_seconds=5.0):
  """The ``Results`` of ``Evaluator.run`` (same counts), computed by a Beam pipeline.

  Args:
    load: picklable callable () -> (quantized model, test dataset of (images, labels)
      batches); every worker calls it once. It must give the same model and test set everywhere
      (the merge checks the digests and the clean count).
    chips, conditions, offsets: as in ``Evaluator.run``; chips are pickled to the workers.
    options: ``PipelineOptions`` (e.g. from ``pipeline_options``); default: the DirectRunner.
      Runners other than the direct ones need ``--temp_location``, a folder (any
      ``tf.io.gfile`` path, e.g. gs://...) that the workers and this process share.
    metadata: JSON-able dict stored with the results; ``workers`` (how many worker processes
      measured) and ``worker_threads`` (their thread budget) are added.
    allow_high_rate: accept rates above 0.5 (refused by default as likely percents).
    worker_threads: TensorFlow threads per worker process, in [1, 1024]; default
      ``default_worker_threads(options)``.
    resume: the ``partial`` of an ``IncompleteRun`` (or an in-process partial result) of the
      same evaluation: its complete chips are taken over, the others evaluated.
    retries: new pipelines for the chips still missing after a failed one (>= 0).
    checkpoint_seconds: how often a worker keeps its counts for a retry (>= 0; 0: every chip).

  Raises:
    IncompleteRun: the pipeline and its retries failed; it holds the counts measured.
  """
  plan, items = work_items(chips, conditions, offsets, allow_high_rate)
  options = options or pipeline_options("DirectRunner")
  if worker_threads is None:
    worker_threads = default_worker_threads(options)
  else:
    worker_threads = threads.check(worker_threads)
  retries = checks.count(retries, "retries")
  checkpoint_seconds = checks.real(checkpoint_seconds, "checkpoint_seconds", minimum=0)
  counts = Counts()
  if resume is not None:
    _take_over(resume, plan, counts)
  runner = options.view_as(beam_options.StandardOptions).runner or "DirectRunner"
  temp_location = options.view_as(beam_options.GoogleCloudOptions).temp_location
  local_folder = None
  if temp_location:
    folder = os.path.join(temp_location, f"{RESULT_FILE_PREFIX}{uuid.uuid4().hex}")
  elif runner_class(runner) in LOCAL_RUNNERS:
    folder = local_folder = tempfile.mkdtemp(prefix=RESULT_FILE_PREFIX)
  else:
    raise ValueError(f"runner {runner} needs --temp_location: a folder that the workers and "
                     "this process share (the merged counts are written there)")
  failure = None
  try:
    for attempt in range(retries + 1):
      todo = [item for item in items
              if not all((item.chip.name, c, o) in counts.errors
                         for c in item.conditions for o in item.offsets)]
      if not todo:  # a failed pipeline may have kept every count before it failed
        failure = None
        break
      if attempt:
        logging.warning("the Beam pipeline failed (%s); running a new one for the %d chips "
                        "still missing (retry %d of %d)", _cause(failure), len(todo), attempt,
                        retries)
      result_path = os.path.join(folder, f"result_{attempt}.json")
      parts_folder = os.path.join(folder, f"parts_{attempt}")
      tf.io.gfile.makedirs(parts_folder)
      try:
        with _one_line_per_thread_error(), beam.Pipeline(options=options) as pipeline:
          build_pipeline(pipeline, load, plan, todo, result_path, worker_threads, parts_folder,
                         checkpoint_seconds)
      except Exception as error:  # pylint: disable=broad-except  (a lost worker, a failing item)
        failure = error
        _read_kept_parts(parts_folder, counts)
        continue
      done = results_lib.Results.from_json(result_path)
      counts.add_header({field: getattr(done, field) for field in HEADER}, "the pipeline")
      counts.add_errors(done.errors, done.condition_kind)
      counts.workers.update(done.metadata.get("workers", ()))
      counts.worker_threads.update(done.metadata.get("worker_threads", ()))
      failure = None
      break
  finally:
    if local_folder:
      shutil.rmtree(local_folder, ignore_errors=True)
    elif tf.io.gfile.exists(folder):
      tf.io.gfile.rmtree(folder)
  expected = {(item.chip.name, c, o) for item in items for c in item.conditions
              for o in item.offsets}
  partial = counts.results(plan)
  missing = [item.chip.name for item in items
             if any((item.chip.name, c, o) not in counts.errors
                    for c in item.conditions for o in item.offsets)]
  if failure is not None and missing:
    if partial is not None:
      partial.metadata = dict(metadata or {}, **_worker_metadata(counts))
    retried = f" and so did {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    names = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    raise IncompleteRun(
        f"the Beam pipeline failed ({_cause(failure)}){retried}: {len(missing)} of {len(items)} "
        f"chips have no counts ({names}); the others' counts are kept in the error's partial "
        "results (pass them as resume)",
        partial, missing) from failure
  if set(partial.errors) != expected:
    missing = sorted(expected - set(partial.errors))[:5]
    extra = sorted(set(partial.errors) - expected)[:5]
    raise ValueError(f"the pipeline's counts do not match the work items: missing {missing}, "
                     f"unexpected {extra} (first five)")
  partial.metadata = dict(metadata or {}, **_worker_metadata(counts))
  return partial
