"""The report's section on the analysis of the suite's models (a suite's ``"analysis"``).

For each analysed run (its first seed) bin/reproduce's evaluate stage ran bin/sensitivity,
bin/diagnose, bin/weight_noise and bin/chip_map into ``<run dir>/analysis/``
(``suite_jobs``). This module reads their JSON files as data, checked against the suite's
settings and the run's model, and renders per layer sensitivity, confidence clean vs. perturbed
beside the paper's Tab. 2, weight redundancy (Fig. 6), weight noise vs. bit errors (Fig. 9) and
the profiled chip map, then copies the figures next to the report. Every number is computed from
those files, the run's eval_random.json and its operative config; none is typed here.
"""
import collections
import math
import os
import shutil

from tfbet import checks
from tfbet import chip_files
from tfbet import files
from tfbet import results as results_lib
from tfbet import sensitivity as sensitivity_lib
from tfbet import weight_noise as noise_lib
from tfbet.cli import suite_jobs
from tfbet.cli import suite_results

# Bindings that differ between the seeds of one run, and those the findings compare.
_SEEDS = ("train.seed", "load_data.seed")
_CLIPPING = ("train.weight_constraint", "WeightClip.w_max")
_SMOOTHING = ("BitErrorTrainer.label_smoothing",)
_FIGURES = (("sensitivity", "sensitivity per layer"),
            ("diagnose", "confidence, weight magnitudes, bit positions"),
            ("weight_noise", "weight noise vs. bit errors"), ("chip_map", "chip map"))


def _json(path):
  size = files.size(path)
  if size > results_lib.MAX_RESULT_BYTES:
    raise ValueError(f"{path}: {size} bytes, more than the {results_lib.MAX_RESULT_BYTES} an "
                     "analysis file may have")
  return files.read_json(path, "analysis file")


def _diagnose(path):
  """The numbers of a bin/diagnose JSON file the report uses, each checked."""
  record = _json(path)
  try:
    confidence = {name: {key: checks.real(record["confidence"][name][key],
                                          f"confidence.{name}.{key}", 0.0, 1.0)
                         for key in ("error", "mean_confidence")}
                  for name in ("clean", "perturbed")}
    return {"confidence": confidence, "chip": str(record["chip"]),
            "rate": checks.real(record["rate"], "rate", 0.0, 1.0),
            "n": checks.count(record["n"], "n", minimum=1, maximum=checks.MAX_COUNT),
            "share": checks.real(record["redundancy"]["overall"], "redundancy.overall", 0.0, 1.0),
            "threshold": checks.real(record["redundancy"]["threshold"], "redundancy.threshold",
                                     0.0, 1.0)}
  except (KeyError, TypeError, ValueError, AttributeError) as error:
    raise ValueError(f"{path}: invalid bin/diagnose result ({error})") from error


def _chip_map(path):
  """The numbers of a bin/chip_map JSON file the report uses, each checked."""
  record = _json(path)
  try:
    per_bit = [checks.real(p, "per_bit", 0.0, 1.0)
               for p in checks.bounded_list(record["per_bit"], "per_bit", 8)]
    return {"chip": str(record["chip"]), "voltage": checks.real(record["voltage"], "voltage", 0.0),
            "offset": checks.count(record["offset"], "offset", maximum=checks.MAX_COUNT),
            "per_bit": per_bit, "expected": checks.real(record["expected_changed_bits"],
                                                        "expected_changed_bits", 0.0)}
  except (KeyError, TypeError, ValueError, AttributeError) as error:
    raise ValueError(f"{path}: invalid bin/chip_map result ({error})") from error


def read_analysis(suite, run_dir, random):
  """{tool: its numbers} of a run's analysis/ folder, None while a step is not done (its PNG,
  written last, is missing). ValueError when a file holds another model than ``random`` (the
  run's eval_random.json) or other settings than ``suite.analysis``."""
  folder = os.path.join(run_dir, suite_jobs.ANALYSIS_DIR)
  paths = {tool: os.path.join(folder, f"{tool}.json") for tool in suite_jobs.ANALYSIS_TOOLS}
  if not all(os.path.exists(os.path.join(folder, f"{tool}.png")) for tool in paths):
    return None
  found = {"sensitivity": sensitivity_lib.Sensitivity.from_dict(_json(paths["sensitivity"]),
                                                                paths["sensitivity"]),
           "weight_noise": noise_lib.NoiseResults.from_dict(_json(paths["weight_noise"]),
                                                           paths["weight_noise"]),
           "diagnose": _diagnose(paths["diagnose"]), "chip_map": _chip_map(paths["chip_map"])}
  analysis = suite.analysis
  n = min(analysis.test_limit or random.n, random.n)
  sensitivity, noise, diagnose, chip = (found[t] for t in ("sensitivity", "weight_noise",
                                                           "diagnose", "chip_map"))
  draws = collections.Counter(m for _, m in noise.errors)  # {magnitude: draws}
  differences = {
      "sensitivity": (sensitivity.full.model.get("digest") != random.model.get("digest")
                      or sensitivity.by != "layer" or sensitivity.full.n != n
                      or round(sensitivity.condition, 10) != round(analysis.rate / 100, 10)
                      or len(sensitivity.full.chip_names) != analysis.num_chips),
      "weight_noise": (noise.model.get("digest") != random.model.get("digest")
                       or (noise.n, noise.data_digest) != (random.n, random.data_digest)
                       or sorted(round(100 * m, 10) for m in draws)
                       != sorted(round(m, 10) for m in analysis.magnitudes)
                       or set(draws.values()) != {analysis.num_chips}),
      "diagnose": (round(diagnose["rate"], 10) != round(analysis.rate / 100, 10)
                   or diagnose["n"] != n),
      "chip_map": (chip["chip"] != analysis.chip or chip["offset"] != analysis.offset
                   or abs(chip["voltage"] - analysis.voltage) > chip_files.VOLTAGE_TOLERANCE)}
  stale = [paths[tool] for tool, differs in differences.items() if differs]
  if stale:
    raise ValueError(f"{stale[0]} holds another model or other settings (rate, chips, "
                     "magnitudes, profiled chip, test examples) than the analysis of suite "
                     f"{suite.name!r} asks for; remove {folder} to analyse the run again")
  return found


def _recipe(config):
  """(w_max or None without clipping, label smoothing) of a run's operative config; (None,
  None) when the config is not recorded."""
  if not config:
    return None, None
  clipped = config.get("train.weight_constraint", "None") != "None"
  try:
    w_max = float(config["WeightClip.w_max"]) if clipped else None
    return w_max, float(config.get("BitErrorTrainer.label_smoothing", "0"))
  except (KeyError, ValueError):
    return None, None


def _series(done, varied):
  """Lists of two or more analysed runs whose configs agree apart from ``varied`` (_CLIPPING or
  _SMOOTHING) and the seeds, in the order of the paper's findings: by w_max from no clipping
  down, by label smoothing up."""
  configs = {name: entry["config"] for name, (entry, _) in done.items()}
  groups = {}
  for name, config in configs.items():
    if config:
      key = tuple(sorted((k, v) for k, v in config.items() if k not in varied + _SEEDS))
      groups.setdefault(key, []).append(name)

  def order(name):
    w_max, smoothing = _recipe(configs[name])
    return -(math.inf if w_max is None else w_max) if varied == _CLIPPING else smoothing or 0.0

  return [sorted(group, key=order) for group in groups.values() if len(group) > 1]


def _trend(points, rises, words):
  """'A 1.00 → B 2.00: <words[0]>' when the values rise (``rises``) or fall at every step,
  else '...: <words[1]>'."""
  values = [v for _, v in points]
  steps = [b - a for a, b in zip(values, values[1:])]
  holds = all(s > 0 for s in steps) if rises else all(s < 0 for s in steps)
  chain = " → ".join(f"{label} {value:.2f}" for label, value in points)
  return f"{chain}: {words[0] if holds else words[1]}"


def _pm(summary):
  return f"{100 * summary.mean:.2f} ± {100 * summary.std:.2f}"


def _sensitivity_lines(done, labels):
  """Markdown table: RErr with only one layer faulty, a column per run."""
  reports = {name: found["sensitivity"] for name, (_, found) in done.items()}
  layers = list(dict.fromkeys(g.name for report in reports.values() for g in report.groups))
  lines = ["| layer | share of the weights in % | " + " | ".join(labels[n] for n in reports)
           + " |", "|---|---|" + "---|" * len(reports),
           "| none (clean Err) | – | " + " | ".join(
               f"{100 * r.full.clean_error:.2f}" for r in reports.values()) + " |"]
  for layer in layers:
    groups = {name: {g.name: g for g in r.groups}.get(layer) for name, r in reports.items()}
    shares = dict.fromkeys(f"{100 * g.num_weights / reports[name].full.model['num_weights']:.2f}"
                           for name, g in groups.items() if g is not None)
    cells = [_pm(reports[name].results[layer].summary()[0]) if g is not None else "–"
             for name, g in groups.items()]
    lines.append(f"| {layer} | {' / '.join(shares)} | " + " | ".join(cells) + " |")
  lines.append("| all (the whole memory) | 100 | " + " | ".join(
      _pm(r.full.summary()[0]) for r in reports.values()) + " |")
  first = next(iter(reports.values()))
  return [f"RErr in % with only that layer's memory faulty, at p = "
          f"{100 * first.condition:g} %: mean ± std over {len(first.full.chip_names)} chips "
          f"(bin/eval's first ones, their errors cut to the layer), n = {first.full.n}.", ""] + (
              lines + [""])


def _confidence_lines(suite, done, labels):
  """Markdown table: confidence clean and at p (bin/diagnose) beside Tab. 2, and the findings."""
  paper = suite.analysis.paper
  runs = {run.name: run for run in suite.runs}
  first = next(iter(done.values()))[1]["diagnose"]
  rate = f"{100 * first['rate']:g}"
  header = (f"| Model | w_max | LS | Err | Conf | Conf at p = {rate} % | gap | RErr at p = "
            f"{rate} % (this chip) |")
  if paper is not None:
    columns = [f"RErr p = {r:g}" for r in paper.rates]
    header += (f" Tab. 2 row | Err | Conf | Conf p = {paper.confidence_rate:g} | gap | "
               + " | ".join(columns) + " |")
  lines = [header, "|" + "---|" * (header.count("|") - 1)]
  gaps = {}
  for name, (entry, found) in done.items():
    confidence = found["diagnose"]["confidence"]
    clean, perturbed = confidence["clean"], confidence["perturbed"]
    gaps[name] = 100 * (clean["mean_confidence"] - perturbed["mean_confidence"])
    w_max, smoothing = _recipe(entry["config"])
    row = (f"| {labels[name]} | {'–' if w_max is None else f'{w_max:g}'} | "
           f"{f'{smoothing:g}' if smoothing else '–'} | {100 * clean['error']:.2f} | "
           f"{100 * clean['mean_confidence']:.2f} | {100 * perturbed['mean_confidence']:.2f} | "
           f"{gaps[name]:.2f} | {100 * perturbed['error']:.2f} |")
    if paper is not None:
      key = runs[name].paper_row
      if key in paper.confidence:
        (err, rerr), (conf, conf_p) = paper.rows[key], paper.confidence[key]
        row += (f" {key[1]} | {err:.2f} | {conf:.2f} | {conf_p:.2f} | {conf - conf_p:.2f} | "
                + " | ".join(f"{v:.2f}" for v in rerr) + " |")
      else:
        row += " none |" + " – |" * (4 + len(paper.rates))
    lines.append(row)
  lines += ["", f"Conf: mean softmax confidence in % of the n = {first['n']} test examples, "
            f"clean and on one random chip ({first['chip']}, bin/eval's first) at p = {rate} %; "
            "gap: clean − perturbed, in points; w_max and LS (label smoothing) from the run's "
            "operative config."]
  if paper is not None:
    paper_gaps = ", ".join(f"{model} {conf - conf_p:.2f}" for (_, model), (conf, conf_p)
                           in paper.confidence.items())
    lines[-1] += (f" Tab. 2 beside ours is CIFAR10 at p = {paper.confidence_rate:g} % "
                  f"({paper.source}; typed once in `gin/suites/{paper.path}`), ours MNIST at "
                  f"CPU scale at p = {rate} %. Its gaps: {paper_gaps} points: the paper finds "
                  "that the gap shrinks with smaller w_max and is larger with label smoothing.")
  findings = ["by w_max: " + _trend([(labels[n], gaps[n]) for n in series], False, (
      "shrinks at every step", "does not shrink at every step"))
              for series in _series(done, _CLIPPING)]
  findings += ["by label smoothing: " + _trend([(labels[n], gaps[n]) for n in series], True, (
      "larger with label smoothing", "not larger with label smoothing"))
               for series in _series(done, _SMOOTHING)]
  if findings:
    lines += ["", "Ours, among analysed runs that differ only in that setting (one chip, no "
              "noise estimate: a description, not a verdict):", ""]
    lines += [f"- gap {finding}" for finding in findings]
  return lines + [""]


def _redundancy_lines(done, labels):
  """Markdown: the share of weights near their tensor's maximum (Fig. 6), and its trend."""
  shares = {name: 100 * found["diagnose"]["share"] for name, (_, found) in done.items()}
  threshold = next(iter(done.values()))[1]["diagnose"]["threshold"]
  lines = [f"| Model | weights with \\|w\\| ≥ {threshold:g} max\\|w\\| of their tensor, in % |",
           "|---|---|"] + [f"| {labels[n]} | {share:.2f} |" for n, share in shares.items()]
  trends = [_trend([(labels[n], shares[n]) for n in series], True, (
      "grows with smaller w_max at every step, as Fig. 6 shows",
      "does not grow with smaller w_max at every step, unlike Fig. 6"))
            for series in _series(done, _CLIPPING)]
  lines += ["", "Fig. 6's point (CIFAR10): clipping makes the network use more of each "
            "tensor's range, i.e. more weights near the maximum."]
  return lines + [""] + [f"- Ours, by w_max: {trend}." for trend in trends] + [""] * bool(trends)


def _noise_lines(suite, done, labels):
  """Markdown table: RErr under L∞ weight noise (bin/weight_noise) beside RErr under bit errors
  (the run's eval_random.json, same seed and test set)."""
  magnitudes = sorted(suite.analysis.magnitudes)
  rates = suite_results.rate_fractions(suite)
  lines = ["| Model | Err | " + " | ".join(f"noise {m:g} %" for m in magnitudes) + " | "
           + " | ".join(f"bits p = {r:g} %" for r in suite.rates) + " |",
           "|---|---|" + "---|" * (len(magnitudes) + len(rates))]
  means = {}
  for name, (entry, found) in done.items():
    noise = {round(100 * s.magnitude, 10): s for s in found["weight_noise"].summary()}
    means[name] = [100 * noise[round(m, 10)].mean for m in magnitudes]
    cells = [_pm(noise[round(m, 10)]) for m in magnitudes]
    cells += [_pm(s) if s is not None else "–"
              for s in (suite_results.summary_at(entry["random"], r) for r in rates)]
    lines.append(f"| {labels[name]} | {100 * entry['random'].clean_error:.2f} | "
                 + " | ".join(cells) + " |")
  noise = next(iter(done.values()))[1]["weight_noise"]
  draws = len({s for s, _ in noise.errors})
  lines += ["", f"RErr in %, mean ± std: noise uniform in ± x % of each tensor's quantization "
            f"range ({draws} draws per magnitude), bit errors at rate p (the suite's chips), "
            f"n = {noise.n}. Fig. 9 (CIFAR10): clipping makes the network robust to L∞ weight "
            "noise too, while noise changes every weight and bit errors only some."]
  trends = [f"- Ours, by w_max, noise {m:g} %: " + _trend(
      [(labels[n], means[n][index]) for n in series], False,
      ("falls with smaller w_max at every step", "does not fall at every step")) + "."
            for series in _series(done, _CLIPPING) for index, m in enumerate(magnitudes)]
  return lines + [""] + trends + [""] * bool(trends)


def _chip_map_lines(done, labels):
  """Markdown table: per bit position, the probability that a stored bit changes."""
  first = next(iter(done.values()))[1]["chip_map"]
  bits = max(len(found["chip_map"]["per_bit"]) for _, found in done.values())
  lines = ["| Model | " + " | ".join(f"bit {b}" for b in range(bits))
           + " | expected changed bits |", "|---|" + "---|" * (bits + 1)]
  for name, (_, found) in done.items():
    per_bit = found["chip_map"]["per_bit"]
    cells = [f"{100 * p:.3f}" for p in per_bit] + ["–"] * (bits - len(per_bit))
    lines.append(f"| {labels[name]} | " + " | ".join(cells)
                 + f" | {found['chip_map']['expected']:,.0f} |")
  return [f"Simulated profiled {first['chip']} at V/Vmin = {first['voltage']:g}, weights from bit "
          f"address {first['offset']}: probability in % that a stored bit of each position "
          "changes (exact, from the stored codes; bit 0 is the least significant).", ""] + (
              lines + [""])


def analysis_lines(suite, loaded, output_dir, figure_dir):
  """Markdown lines of the section ([] when the suite analyses nothing); copies the figures
  to ``figure_dir`` as <suite>_analysis_<run>_<tool>.png."""
  if suite.analysis is None:
    return []
  labels = suite_results.run_labels(suite)
  done = {}
  for name in suite.analysis.runs:
    run = suite.run(name)
    entry = loaded.get(name, {}).get(run.seeds[0])
    run_dir = run.directory(output_dir, run.seeds[0])
    found = entry and read_analysis(suite, run_dir, entry["random"])
    if found:
      done[name] = (entry, found)
  missing = [f"{labels[n]} seed {suite.run(n).seeds[0]}" for n in suite.analysis.runs
             if n not in done]
  lines = ["## Analysis of the suite's models", "",
           "bin/reproduce's evaluate stage runs bin/sensitivity, bin/diagnose, bin/weight_noise "
           "and bin/chip_map on the first seed of each run the suite analyses; their files lie "
           f"in `<run>/seed<k>/{suite_jobs.ANALYSIS_DIR}/`."]
  if missing:
    lines[-1] += f" Not analysed yet: {', '.join(missing)}."
  if not done:
    return lines + [""]
  lines += ["", "### Sensitivity per layer", ""] + _sensitivity_lines(done, labels)
  lines += ["### Confidence, clean and under bit errors (Tab. 2)", ""]
  lines += _confidence_lines(suite, done, labels)
  lines += ["### Redundancy (Fig. 6)", ""] + _redundancy_lines(done, labels)
  lines += ["### Weight noise vs. bit errors (Fig. 9)", ""] + _noise_lines(suite, done, labels)
  lines += ["### Profiled chip map", ""] + _chip_map_lines(done, labels)
  lines += ["### Figures", ""]
  for name in done:
    run_dir = suite.run(name).directory(output_dir, suite.run(name).seeds[0])
    links = []
    for tool, title in _FIGURES:
      target = f"{suite.name}_analysis_{name}_{tool}.png"
      with files.atomic_path(os.path.join(figure_dir, target)) as temporary:
        shutil.copyfile(os.path.join(run_dir, suite_jobs.ANALYSIS_DIR, f"{tool}.png"),
                        temporary)
      links.append(f"[{title}](figures/{target})")
    lines.append(f"- {labels[name]}: " + " · ".join(links))
  return lines + [""]
