"""The figures of the reproduction report: RErr against p per run (Fig. 2 style) and the best
RErr per method family (Fig. 7 style), each naming what its runs were measured with."""
import numpy as np

from tfbet import files
from tfbet import plots
from tfbet.cli import suite_results


def _rate_axes():
  """A new figure with RErr against the bit error rate, both on log scales (RErr spans about
  0.5 to 90 %: on a linear axis every robust model sits on one line near the clean error)."""
  fig = plots.new_figure((6, 4))
  ax = fig.add_subplot()
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlabel("bit error rate p in %")
  ax.grid(alpha=0.3)
  return fig, ax


def _footer(fig, suite, loaded, names):
  """Names the schemes and coverage the plotted runs were measured with, one line each."""
  labels = suite_results.run_labels(suite)
  described = {}
  for name in names:
    for entry in loaded.get(name, {}).values():
      if "random" in entry:
        described.setdefault(plots.describe_measurement(entry["random"].model), []).append(
            labels.get(name, name))
  lines = [f"{'all runs' if len(described) == 1 else ', '.join(dict.fromkeys(runs))}: {text}"
           for text, runs in described.items()]
  plots.add_footer(fig, lines or ["scheme and coverage not recorded"])


def _save(fig, ax, path, ylabel):
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=8)
  files.save_figure(fig, path)


def _curve(suite, loaded, name):
  """(p in %, mean RErr in %) of a run over the suite's rates it was evaluated at."""
  points = [(r, suite_results.model_mean(loaded, name, r / 100)) for r in suite.rates]
  points = [(r, 100 * m) for r, m in points if m is not None]
  return tuple(np.array(v) for v in zip(*points)) if points else (np.array([]), np.array([]))


def plot_curves(suite, loaded, path, names):
  """RErr against p for several models (Fig. 2 style), means over seeds and chips."""
  fig, ax = _rate_axes()
  labels = suite_results.run_labels(suite)
  for name in names:
    if name in loaded:
      p, mean = _curve(suite, loaded, name)
      ax.plot(p, mean, "o-", label=labels[name])
  _footer(fig, suite, loaded, names)
  _save(fig, ax, path, "RErr in %")


def plot_best(suite, loaded, path, families):
  """Lowest mean RErr per rate within each method family (Fig. 7 style)."""
  fig, ax = _rate_axes()
  for name in loaded:
    p, mean = _curve(suite, loaded, name)
    ax.plot(p, mean, "-", color="0.8", lw=0.8)
  for label, names in families.items():
    best = []
    for rate in suite.rates:
      means = (suite_results.model_mean(loaded, n, rate / 100) for n in names)
      values = [m for m in means if m is not None]
      if values:
        best.append((rate, 100 * min(values)))
    if best:
      ax.plot(*zip(*best), "o-", label=label)
  _footer(fig, suite, loaded, list(loaded))
  _save(fig, ax, path, "best RErr in % (per method family)")
