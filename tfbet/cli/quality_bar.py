"""The recipe's quality bar: RANDBET's clean Err at most QUALITY_BAR above CLIPPING's.

Robustness bought with clean accuracy is no success of the recipe, so each of a suite's
``quality_pairs`` (RANDBET and CLIPPING at the same w_max) is held against the bar with the
noise of the training seeds.
"""
import math

import numpy as np

from tfbet.cli import suite_results

# The quality bar of the recipe: RANDBET's clean error at most this far above CLIPPING's.
QUALITY_BAR = 0.002


def _last_epoch_train_errors(loaded, name):
  """Clean training error of the last epoch per seed (from the training history), or None."""
  values = [(loaded[name][s]["result"].get("history") or {}).get("error")
            for s in sorted(loaded[name])]
  return None if any(not v for v in values) else np.array([v[-1] for v in values])


def _clean_seed_var(suite, loaded, errors):
  """Variance over seeds of one model's clean Err: its own, or pooled over the multi-seed rows."""
  if len(errors) > 1:
    return float(np.var(errors, ddof=1))
  pooled = [np.var(suite_results.clean_errors(loaded, run.name), ddof=1) for run in suite.runs
            if run.name in loaded and len(loaded[run.name]) > 1]
  return float(np.mean(pooled)) if pooled else None  # no seed spread measured anywhere


def quality_bar_lines(suite, loaded):
  """RANDBET's clean Err against CLIPPING's at the same w_max (the recipe's quality bar).

  A pair that misses the bar gets the same gap on the training set next to it: a gap there too
  means RANDBET fits the training data less well, none means it generalizes worse.
  """
  lines = []
  labels = suite_results.run_labels(suite)
  for randbet, clipping in suite.quality_pairs:
    if randbet not in loaded or clipping not in loaded:
      continue
    a, b = (suite_results.clean_errors(loaded, name) for name in (randbet, clipping))
    gap = a.mean() - b.mean()
    met = "meets" if gap <= QUALITY_BAR else "misses"
    variances = [_clean_seed_var(suite, loaded, errors) for errors in (a, b)]
    if None in variances:
      noise, near = " (seed spread not measured: no row has several seeds)", ""
    else:
      margin = 2 * math.sqrt(variances[0] / len(a) + variances[1] / len(b))
      pooled = ("; pooled from the multi-seed rows for a run trained once"
                if min(len(a), len(b)) == 1 else "")
      noise = f" ± {100 * margin:.2f} points (2 s.e. of the seed spread{pooled})"
      near = "" if abs(gap - QUALITY_BAR) > margin else " (within noise of it)"
    line = (f"- {labels[randbet]}: clean Err {100 * a.mean():.2f} % vs {labels[clipping]} "
            f"{100 * b.mean():.2f} % (means over {len(a)} and {len(b)} seeds): "
            f"{100 * gap:+.2f}{noise}, **{met}** the bar of +{100 * QUALITY_BAR:.1f} on the "
            f"means{near}.")
    train_a, train_b = (_last_epoch_train_errors(loaded, n) for n in (randbet, clipping))
    if met == "misses" and train_a is not None and train_b is not None:
      train_gap = train_a.mean() - train_b.mean()
      cause = ("the gap is on the training set too: RANDBET fits the training data less well "
               "(not a generalization gap)" if train_gap >= gap / 2 else "the gap is not on "
               "the training set: RANDBET generalizes worse")
      line += (f" Training error in the last epoch (clean weights): {100 * train_a.mean():.2f} "
               f"vs {100 * train_b.mean():.2f} % ({100 * train_gap:+.2f} points): {cause}.")
    lines.append(line)
  return lines
