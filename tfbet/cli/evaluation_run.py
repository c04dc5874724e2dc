"""One evaluation of chips by bin/eval or bin/eval_chips: where it runs, how it resumes, what
it writes.

In this process the chips are evaluated one after another and the counts so far are kept in
``<output>.partial.json`` after every chip, so the same command resumes an interrupted run
(``run_resumable``). On an Apache Beam ``--runner`` (``tfbet.beam_evaluation``; worker
processes on this machine, or a cluster) the counts are the same; a failed run keeps what was
measured in the same partial file. The results are printed as a table and written to
``--output`` (JSON and CSV) and ``--plot``.
"""
import functools
import os
import shlex

from absl import app

from tfbet import evaluation
from tfbet import files
from tfbet import lazy_modules
from tfbet.cli import model_flags
from tfbet.cli import reporting

threads = lazy_modules.module("tfbet.threads")  # TensorFlow: not for --help


def evaluate_chips(flag_values, model, data, chip_list, conditions, offsets, progress,
                   metadata, num_shards=1, shard_index=0):
  """``Results`` of the chips, in this process (resumable, see run_resumable) or on the Beam
  --runner (the same counts; Beam spreads the chips itself, so it takes no shards)."""
  if flag_values.runner == model_flags.IN_PROCESS:
    if flag_values.beam_options:
      raise app.UsageError(
          f"--beam_options needs a Beam --runner (not {model_flags.IN_PROCESS})")
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
                         f"use --runner={model_flags.IN_PROCESS}")
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
      model_flags.load_test_model, run_dir=absolute(flag_values.run_dir),
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

