"""Chip evaluation on Apache Beam: the counts of ``Evaluator.run`` on any Beam runner.

RErr is an average over chips, and Prop. 1 tightens only with many of them; this module spreads
the chips over the workers of a Beam runner (the DirectRunner's processes on one machine, or
Flink, Spark, Dataflow on a cluster) and gives the same ``tfbet.evaluation.Results``, count for
count, as the in-process evaluation.

* A work item is one chip with its conditions and offsets (``WorkItem``, planned by
  ``tfbet.evaluation.make_plan`` exactly as in-process).
* Each worker loads the model and the test set once (``DoFn.setup``, through the picklable
  ``load`` callable), counts its clean errors and, per item, the errors at every
  (condition, offset); it emits one partial ``Results`` per item.
* A ``CombineFn`` merges the parts with ``tfbet.evaluation.merge``, which refuses a
  (chip, condition, offset) seen twice and parts from another model, test set or clean count.
  Cluster runners (Dataflow, Flink, Spark) and the BundleBasedDirectRunner retry a failed
  bundle and drop the output of the failed attempt, so a retry cannot count twice; if one ever
  did, the merge fails instead of averaging a count twice. The multi-process DirectRunner (Beam's
  FnApiRunner) does not retry: a failing item fails the run.
* The merged counts are written as a result JSON to a path that workers and the launching process
  both reach (the runner's ``--temp_location``, or a local temporary folder for the direct
  runners), read back and checked to hold every planned (chip, condition, offset) exactly.

Needs the optional dependency ``apache-beam`` (``pip install tfbet[beam]``).
"""
import collections
import os
import shutil
import tempfile
import time
import uuid

from absl import logging
import apache_beam as beam
from apache_beam.options import pipeline_options as beam_options
from apache_beam.runners import runner as beam_runner
import tensorflow as tf

from tfbet import evaluation
from tfbet import memory

# Runner classes that run in (or next to) this process, where a local temporary folder is shared;
# DirectRunner is a SwitchingDirectRunner.
LOCAL_RUNNERS = ("SwitchingDirectRunner", "BundleBasedDirectRunner", "FnApiRunner")
RESULT_FILE_PREFIX = "tfbet_beam_eval_"

WorkItem = collections.namedtuple("WorkItem", ["chip", "conditions", "offsets", "condition_kind"])
WorkItem.__doc__ = "One chip evaluated at every condition x offset by one worker."


def work_items(chips, conditions=None, offsets=(0,), allow_high_rate=False):
  """(plan, the ``WorkItem`` of every chip); arguments and checks as in ``Evaluator.run``."""
  plan, work = evaluation.make_plan(chips, conditions, offsets, allow_high_rate=allow_high_rate)
  kind = "rate" if work[0][0].conditions is None else "voltage"
  return plan, [WorkItem(chip, tuple(conds), tuple(offs), kind) for chip, conds, offs in work]


class EvaluateChips(beam.DoFn):
  """Worker: loads model and test set once, emits the counts of each item as a result dict."""

  def __init__(self, load):
    super().__init__()
    self._load = load
    self._evaluator = None
    self._clean_errors = None

  def setup(self):
    model, dataset = self._load()
    self._evaluator = evaluation.Evaluator(model, dataset)
    self._clean_errors = self._evaluator.clean_errors()

  def process(self, item):
    started = time.perf_counter()
    evaluator = self._evaluator
    part = evaluation.Results(
        model=evaluator.describe_model(), n=evaluator.n, data_digest=evaluator.data_digest,
        clean_errors=self._clean_errors, condition_kind=item.condition_kind,
        chips={item.chip.name: item.chip.describe()})
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
    yield part.to_dict()


class MergeResults(beam.CombineFn):
  """Combines the work items' result dicts into the ``Results`` of the whole plan.

  Every part must come from the same model, test set and clean count (checked against the
  first); ``Results.add`` refuses a (chip, condition, offset) counted twice and any count outside
  the plan. Parts are added in plan order, so the result is the in-process one, byte for byte.
  """

  def __init__(self, plan):
    super().__init__()
    self._plan = plan

  def create_accumulator(self):
    return []

  def add_input(self, accumulator, part):
    accumulator.append(part)
    return accumulator

  def merge_accumulators(self, accumulators):
    return [part for accumulator in accumulators for part in accumulator]

  def extract_output(self, accumulator):
    if not accumulator:
      raise ValueError("no work item produced counts")
    parts = [evaluation.Results.from_dict(part, source="work item") for part in accumulator]
    position = {entry["name"]: i for i, entry in enumerate(self._plan["chips"])}
    parts.sort(key=lambda part: min(position.get(name, -1) for name in part.chips))
    first = parts[0]
    merged = evaluation.Results(
        model=first.model, n=first.n, data_digest=first.data_digest,
        clean_errors=first.clean_errors, condition_kind=first.condition_kind,
        chips={entry["name"]: entry["chip"] for entry in self._plan["chips"]}, plan=self._plan)
    for part in parts:
      for what in ("model", "n", "data_digest", "clean_errors", "condition_kind"):
        if getattr(part, what) != getattr(first, what):
          raise ValueError(f"work item of chips {sorted(part.chips)} has {what} "
                           f"{getattr(part, what)!r}, another has {getattr(first, what)!r}: the "
                           "workers did not load the same model and test set")
      for (chip, condition, offset), errors in part.errors.items():
        merged.add(chip, condition, offset, errors)
    return merged.to_dict()


def _write_result(record, path):
  evaluation.Results.from_dict(record, source="merged counts").to_json(path)


def build_pipeline(pipeline, load, plan, items, result_path):
  """Adds the evaluation to ``pipeline``: items -> counts -> one merged result JSON."""
  return (pipeline
          | "WorkItems" >> beam.Create(items)
          # Redistribute the items, so a runner spreads them over its workers instead of fusing
          # them into the single bundle that created them.
          | "Spread" >> beam.Reshuffle()
          | "Evaluate" >> beam.ParDo(EvaluateChips(load))
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
  processes these options ask for, offline.
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
  options = beam_options.PipelineOptions(args + [f"--runner={runner}"])
  unknown = sorted(set(options.get_all_options(retain_unknown_options=True))
                   - set(options.get_all_options()))
  if unknown:
    raise ValueError(f"unknown Beam pipeline options {unknown} in {args}")
  return options


def evaluate(load, chips, conditions=None, offsets=(0,), options=None, metadata=None,
             allow_high_rate=False):
  """The ``Results`` of ``Evaluator.run`` (same counts), computed by a Beam pipeline.

  Args:
    load: picklable callable () -> (quantized model, test dataset of (images, labels)
      batches); every worker calls it once. It must give the same model and test set everywhere
      (the merge checks the digests and the clean count).
    chips, conditions, offsets: as in ``Evaluator.run``; chips are pickled to the workers.
    options: ``PipelineOptions`` (e.g. from ``pipeline_options``); default: the DirectRunner.
      Runners other than the direct ones need ``--temp_location``, a folder (any
      ``tf.io.gfile`` path, e.g. gs://...) that the workers and this process share.
    metadata: JSON-able dict stored with the results.
    allow_high_rate: accept rates above 0.5 (refused by default as likely percents).
  """
  plan, items = work_items(chips, conditions, offsets, allow_high_rate)
  options = options or pipeline_options("DirectRunner")
  runner = options.view_as(beam_options.StandardOptions).runner or "DirectRunner"
  temp_location = options.view_as(beam_options.GoogleCloudOptions).temp_location
  local_folder = None
  if temp_location:
    folder = temp_location
  elif runner_class(runner) in LOCAL_RUNNERS:
    folder = local_folder = tempfile.mkdtemp(prefix=RESULT_FILE_PREFIX)
  else:
    raise ValueError(f"runner {runner} needs --temp_location: a folder that the workers and "
                     "this process share (the merged counts are written there)")
  result_path = os.path.join(folder, f"{RESULT_FILE_PREFIX}{uuid.uuid4().hex}.json")
  try:
    with beam.Pipeline(options=options) as pipeline:
      build_pipeline(pipeline, load, plan, items, result_path)
    results = evaluation.Results.from_json(result_path)
  finally:
    if local_folder:
      shutil.rmtree(local_folder, ignore_errors=True)
    elif tf.io.gfile.exists(result_path):
      tf.io.gfile.remove(result_path)
  expected = {(item.chip.name, c, o) for item in items for c in item.conditions
              for o in item.offsets}
  if set(results.errors) != expected:
    missing = sorted(expected - set(results.errors))[:5]
    extra = sorted(set(results.errors) - expected)[:5]
    raise ValueError(f"the pipeline's counts do not match the work items: missing {missing}, "
                     f"unexpected {extra} (first five)")
  results.metadata = dict(metadata or {})
  return results
