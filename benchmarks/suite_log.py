"""Where a bin/reproduce run's time went, from its log (the driver's progress lines).

    python benchmarks/suite_log.py runs/full.log

For each pipeline (the suite's jobs, then the energy headline's) it prints its wall time, each
worker process's busy seconds and its idle tail (the pipeline's end minus the worker's last
step), and the seconds of every kind of step summed over the workers: the numbers that tell
whether more workers, a better balance or cheaper steps would shorten the suite.
"""
import collections
import re
import sys

# As tfbet.cli.suite_jobs prints it: "[job 3/30, pid 123] run seed 0 train: train done in 163 s
# (suite 164 s)"; the suite clock starts anew with each pipeline.
_STEP = re.compile(r"\[job \d+/(\d+), pid (\d+)\] \S+ seed \d+ (\w+): (.+) done in (\d+) s "
                   r"\(suite (\d+) s\)")
# Each pipeline's first line: "30 jobs on DirectRunner (...)", "18 headline jobs (...) on ...".
_START = re.compile(r"\d+ (headline )?jobs .*on ")


def pipelines(lines):
  """[{"jobs": n, "wall": s, "busy": {pid: s}, "last": {pid: s}, "steps": {step: s}}], one per
  pipeline, in the order they ran."""
  result = []
  for line in lines:
    if _START.match(line.strip()):
      result.append({"jobs": None, "wall": 0, "busy": collections.Counter(), "last": {},
                     "steps": collections.Counter()})
    match = _STEP.match(line.strip())
    if not match or not result:
      continue
    jobs, pid, kind, step, seconds, clock = match.groups()
    step = step.split()[0] if kind == "headline" else step
    current = result[-1]
    current["jobs"] = int(jobs)
    current["wall"] = max(current["wall"], int(clock))
    current["busy"][pid] += int(seconds)
    current["last"][pid] = int(clock)
    current["steps"][step] += int(seconds)
  return [pipeline for pipeline in result if pipeline["busy"]]  # not one whose jobs were done


def main(argv):
  if len(argv) != 2:
    raise SystemExit(f"usage: {argv[0]} LOG (the output of bin/reproduce)")
  try:
    with open(argv[1], encoding="utf-8", errors="replace") as log:
      found = pipelines(log)
  except OSError as error:
    raise SystemExit(f"{argv[0]}: cannot read the log: {error}") from error
  if not found:
    raise SystemExit(f"{argv[1]}: no step lines of bin/reproduce on a Beam runner")
  for number, pipeline in enumerate(found, start=1):
    busy = pipeline["busy"]
    print(f"pipeline {number}: {pipeline['jobs']} jobs, wall {pipeline['wall']} s, "
          f"{len(busy)} workers busy {sum(busy.values())} s in all "
          f"(at best {sum(busy.values()) / len(busy):.0f} s of wall time on {len(busy)})")
    for pid, seconds in sorted(busy.items()):
      print(f"  worker {pid}: busy {seconds} s, idle tail {pipeline['wall'] - pipeline['last'][pid]} s")
    for step, seconds in pipeline["steps"].most_common():
      print(f"  {step}: {seconds} s")


if __name__ == "__main__":
  main(sys.argv)
