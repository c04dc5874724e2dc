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
Rates are in percent; see tfbet/cli/eval_lib.py. While it runs, <output>.lock (host and PID)
keeps a second evaluation into the same --output out; a full disk or a read-only output ends the
run with one line, and the same command resumes from the chips done.
"""
from tfbet.cli import launch


def define_flags():
  """Defines the flags; returns ``main`` and the modules whose flags --help lists."""
  from tfbet.cli import eval_lib  # pylint: disable=g-import-not-at-top
  from tfbet.cli import gin_utils  # pylint: disable=g-import-not-at-top
  eval_lib.define_flags()
  return eval_lib.main_holding_output_lock, (eval_lib, gin_utils)


def run():
  """Runs tfbet-eval (called by the console script, ``python -m`` and bin/)."""
  launch.run(define_flags, __doc__)


if __name__ == "__main__":
  run()
