"""PNG figures: the matplotlib side of tfbet, written atomically by ``tfbet.files.save_figure``.

Figures use matplotlib's object-oriented API with an Agg canvas (:func:`new_figure`), which
leaves the global pyplot backend alone; matplotlib loads only when a figure is drawn.
"""
import textwrap

import numpy as np

from tfbet import checks
from tfbet import files


def new_figure(figsize, **kwargs):
  """A matplotlib ``Figure`` with an Agg canvas and the constrained layout."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure(figsize=figsize, layout="constrained", **kwargs)
  FigureCanvasAgg(figure)
  return figure


def describe_scheme(scheme):
  """'8-bit per-tensor asymmetric unsigned rounding' from a scheme's dict (a result's
  ``model["scheme"]``, ``QuantizationScheme.to_dict()``); 'scheme not recorded' without one."""
  if not isinstance(scheme, dict) or "precision" not in scheme:
    return "scheme not recorded"
  conversion = "rounding" if scheme.get("rounding") else scheme.get("int_conversion", "truncate")
  return (f"{scheme['precision']}-bit "
          f"{'per-tensor' if scheme.get('per_tensor') else 'global'} "
          f"{'asymmetric' if scheme.get('asymmetric') else 'symmetric'} "
          f"{'unsigned' if scheme.get('unsigned') else 'signed'} {conversion}")


def describe_measurement(model_info):
  """'<scheme>, <coverage>' of a result's ``model`` field (``tfbet.evaluation``, docs/design.md
  §6): what a number was measured with."""
  model_info = model_info if isinstance(model_info, dict) else {}
  coverage = model_info.get("coverage")
  if isinstance(coverage, dict) and "faulty_share" in coverage:
    covered = (f"{100 * coverage['faulty_share']:.2f} % of {coverage.get('parameters')} "
               "parameters in faulty memory")
  else:
    covered = "share of parameters in faulty memory not recorded"
  return f"{describe_scheme(model_info.get('scheme'))}, {covered}"


def measured_with(model_info, label=None):
  """One line naming what a result was measured with: model, scheme, precision, coverage."""
  name = label or (model_info or {}).get("name", "model")
  return f"{name}: {describe_measurement(model_info)}"


def add_footer(figure, lines):
  """Writes ``lines`` (e.g. :func:`measured_with` of each model) under the figure's axes,
  each wrapped to the figure's width (about 17 characters per inch at this size)."""
  width = max(40, int(17 * figure.get_figwidth()))
  text = "\n".join(textwrap.fill(line, width, subsequent_indent="  ") for line in lines)
  figure.supxlabel(text, x=0.01, ha="left", fontsize="x-small", color="0.25")


def _check_profiled(chip):
  if getattr(chip, "probability_maps", None) is None:
    raise TypeError(f"chip must be a profiled chip (one with probability maps), got "
                    f"{type(chip).__name__}")


def draw_error_map(chip, voltage, path, region=(64, 128), origin=(0, 0)):
  """Writes a PNG of the fault probabilities of ``chip`` at ``voltage`` (like Fig. 3 / Fig. 8).

  Three panels over the ``region`` (rows, cols) starting at cell ``origin``: p0t1 + p1t0, p0t1
  and p1t0, colored from 0 (violet) to 1 (yellow).
  """
  _check_profiled(chip)
  region_rows = checks.integer(region[0], "region[0] (rows)", minimum=1, maximum=chip.rows)
  region_cols = checks.integer(region[1], "region[1] (cols)", minimum=1, maximum=chip.cols)
  top = checks.integer(origin[0], "origin[0]", minimum=0, maximum=chip.rows - region_rows)
  left = checks.integer(origin[1], "origin[1]", minimum=0, maximum=chip.cols - region_cols)
  p0t1, p1t0 = chip.probability_maps(voltage)
  window = np.s_[top:top + region_rows, left:left + region_cols]
  rates = chip.rates(voltage)
  figure = new_figure(figsize=(12, 3.6))
  axes = figure.subplots(1, 3)
  panels = (("bit error probability", p0t1[window] + p1t0[window]),
            ("0-to-1 probability", p0t1[window]), ("1-to-0 probability", p1t0[window]))
  for ax, (title, values) in zip(axes, panels):
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest",
                      aspect="auto")
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
  figure.colorbar(image, ax=axes, shrink=0.9)
  figure.suptitle(f"{chip.name} at V/Vmin = {float(voltage):.3f}: p = {100 * rates['p']:.3f} %, "
                  f"p_0t1 = {100 * rates['p_0t1']:.3f} %, p_1t0 = {100 * rates['p_1t0']:.3f} %, "
                  f"p_sa = {100 * rates['p_sa']:.3f} % (cells {top}..{top + region_rows - 1} x "
                  f"{left}..{left + region_cols - 1})")
  return files.save_figure(figure, path)


def draw_met_pattern(chip, pattern, path, max_rows=512, footer=None):
  """PNG of a :class:`tfbet.weight_map.MetPattern` (``weight_map.met_pattern``): the chip's
  fault map at the voltage with where each tensor starts, the per-tensor x bit-position change
  probabilities, and the per-bit-position mean; ``footer``: what the weights were stored with
  (scheme, precision, size)."""
  _check_profiled(chip)
  p0t1, p1t0 = chip.probability_maps(pattern.voltage)
  faults = p0t1 + p1t0
  # Max-pool rows so that isolated faulty cells stay visible on a tall array.
  block = max(1, -(-chip.rows // max_rows))
  padded = np.pad(faults, ((0, (-chip.rows) % block), (0, 0)))
  pooled = padded.reshape(-1, block, chip.cols).max(axis=1)
  figure = new_figure(figsize=(15, 5.5))
  left, middle, right = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.4, 1]})
  image = left.imshow(pooled, cmap="viridis", vmin=0, vmax=1, aspect="auto",
                      interpolation="nearest")
  for start in pattern.starts:
    row = (start // chip.cols) / block
    left.axhline(row, color="white", linewidth=0.5)
  left.set_title(f"{chip.name} at V/Vmin = {pattern.voltage:.3f}: p0t1 + p1t0\n(rows max-pooled "
                 f"by {block}; white: where tensors start at offset {pattern.offset})",
                 fontsize="small")
  left.set_xlabel("column")
  left.set_ylabel(f"row / {block}")
  figure.colorbar(image, ax=left, shrink=0.8)
  heat = middle.imshow(100 * pattern.per_tensor, cmap="magma", aspect="auto",
                       interpolation="nearest")
  middle.set_yticks(range(len(pattern.tensors)),
                    list(pattern.tensors), fontsize=6)
  middle.set_xticks(range(pattern.per_tensor.shape[1]))
  middle.set_xlabel("bit position (0 = least significant)")
  middle.set_title("probability that a stored bit changes, in %", fontsize="small")
  figure.colorbar(heat, ax=middle, shrink=0.8)
  right.bar(range(pattern.per_bit.size), 100 * pattern.per_bit, color="C3")
  right.set_xticks(range(pattern.per_bit.size))
  right.set_xlabel("bit position")
  right.set_ylabel("changed bits in % (all weights)")
  right.set_title(f"expected changed bits: {pattern.expected_changed_bits:.0f}", fontsize="small")
  if footer:
    add_footer(figure, [footer])
  files.save_figure(figure, path)
  return path
