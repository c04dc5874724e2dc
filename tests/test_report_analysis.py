"""The report's analysis section on synthetic analysis files: its numbers against numpy."""
import json
import os

import numpy as np
import pytest

from tfbet import evaluation
from tfbet import weight_noise
from tfbet.cli import report_analysis
from tfbet.cli import reproduction_report
from tfbet.cli import suite_results
from tfbet.cli import suites

N, N_ANALYSIS = 500, 200  # the suite's test examples, the analysis' (bin/sensitivity, diagnose)
CHIPS = ("random_1000", "random_1001")
# name, label, paper row, weight constraint, w_max, label smoothing, clean and perturbed
# confidence, share of weights near the maximum.
RUNS = (("rq", "RQUANT", "RQUANT", "None", "None", "0.0", 0.95, 0.80, 0.01),
        ("c1", "CLIPPING 0.1", "CLIPPING 0.1", "@WeightClip()", "0.1", "0.0", 0.93, 0.88, 0.10),
        ("c05", "CLIPPING 0.05", "CLIPPING 0.05", "@WeightClip()", "0.05", "0.0", 0.92, 0.90,
         0.08),
        ("ls", "CLIPPING 0.1 + LS", "CLIPPING 0.1 + LS", "@WeightClip()", "0.1", "0.1", 0.85,
         0.76, 0.12))
LAYERS = (("conv", 60), ("logits", 40))


def _results(rng, n, digest, condition, per_example=False):
  """Results of two chips at one condition; 5 clean errors, the first test examples."""
  clean = np.arange(n) < 5
  wrong = {(chip, condition, 0): clean | (rng.random(n) < 0.1) for chip in CHIPS}
  return evaluation.Results(model={"name": "m", "digest": digest, "num_weights": 100}, n=n,
                            data_digest="data", clean_errors=5, condition_kind="rate",
                            errors={key: int(flags.sum()) for key, flags in wrong.items()},
                            clean_wrong=clean if per_example else None,
                            wrong=wrong if per_example else None)


def _write_json(path, record):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f)


def _write_run(output_dir, row, rng, seed=0):
  """A trained, evaluated and analysed run: its files as bin/reproduce leaves them."""
  name, _, _, constraint, w_max, smoothing, clean, perturbed, share = row
  run_dir = os.path.join(output_dir, name, f"seed{seed}")
  digest = f"{name}{seed}"
  os.makedirs(run_dir)
  _results(rng, N, digest, 0.01, per_example=True).to_json(
      os.path.join(run_dir, "eval_random.json"))
  _write_json(os.path.join(run_dir, "result.json"), {"num_weights": 100})
  with open(os.path.join(run_dir, "operative_config.gin"), "w", encoding="utf-8") as f:
    f.write(f"train.weight_constraint = {constraint}\nWeightClip.w_max = {w_max}\n"
            f"BitErrorTrainer.label_smoothing = {smoothing}\ntrain.seed = {seed}\n"
            f"load_data.seed = {seed}\n")
  folder = os.path.join(run_dir, "analysis")
  full = _results(rng, N_ANALYSIS, digest, 0.025)
  _write_json(os.path.join(folder, "sensitivity.json"), {
      "format": "tfbet-sensitivity/1", "condition": 0.025, "by": "layer",
      "groups": [{"name": layer, "tensors": [f"{layer}/kernel"], "num_weights": size,
                  "results": _results(rng, N_ANALYSIS, digest, 0.025).to_dict()}
                 for layer, size in LAYERS], "full": full.to_dict()})
  noise = weight_noise.NoiseResults(
      model={"name": "m", "digest": digest}, n=N, data_digest="data", clean_errors=5,
      errors={(s, m): int(rng.integers(0, N)) for s in (0, 1) for m in (0.01, 0.1)})
  _write_json(os.path.join(folder, "weight_noise.json"), noise.to_dict())
  _write_json(os.path.join(folder, "diagnose.json"), {
      "confidence": {"clean": {"error": 0.02, "mean_confidence": clean},
                     "perturbed": {"error": 0.05, "mean_confidence": perturbed}},
      "chip": "random_1000", "rate": 0.025, "n": N_ANALYSIS,
      "redundancy": {"threshold": 0.9, "overall": share, "per_tensor": []}})
  _write_json(os.path.join(folder, "chip_map.json"), {
      "chip": "chip2", "voltage": 0.798, "offset": 0, "expected_changed_bits": 1234.4,
      "per_bit": [0.01 * (b + 1) for b in range(8)]})
  for tool in ("sensitivity", "diagnose", "weight_noise", "chip_map"):
    with open(os.path.join(folder, f"{tool}.png"), "wb") as f:
      f.write(f"png of {name} {tool}".encode())
  return full, noise


def _suite(tmp_path, **analysis):
  record = {"description": "Synthetic.", "base_gin": "a.gin", "rates": [1], "num_chips": 2,
            "test_limit": None,
            "runs": [{"name": r[0], "label": r[1], "method": "clipping",
                      "paper_row": {"precision": 8, "model": r[2]}} for r in RUNS],
            "analysis": {"runs": [r[0] for r in RUNS], "rate": 2.5, "num_chips": 2,
                         "magnitudes": [1, 10], "chip": "chip2", "voltage": 0.798, "offset": 0,
                         "test_limit": N_ANALYSIS, "paper": "paper/tab2_cifar10.json",
                         **analysis}}
  path = tmp_path / "synthetic.json"
  path.write_text(json.dumps(record))
  return suites.load_suite(str(path))


@pytest.fixture(name="written")
def written_fixture(tmp_path):
  rng = np.random.default_rng(0)
  output_dir = str(tmp_path / "runs")
  files = {row[0]: _write_run(output_dir, row, rng) for row in RUNS}
  return _suite(tmp_path), output_dir, files


def _row(text, label):
  return next(line for line in text.splitlines() if line.startswith(f"| {label} |"))


def test_the_section_prints_the_files_numbers_beside_tab2_and_copies_the_figures(written,
                                                                                tmp_path):
  suite, output_dir, files = written
  report = tmp_path / "docs" / "report.md"
  reproduction_report.write_report(suite, output_dir, str(report))
  text = report.read_text()
  assert "## Analysis of the suite's models" in text and "Not analysed yet" not in text
  # Sensitivity: mean ± std over the chips of errors / n (numpy, population std), each layer.
  for layer, size in LAYERS:
    line = _row(text, layer)
    assert line.startswith(f"| {layer} | {100 * size / 100:.2f} | ")
    for name, (full, _) in files.items():
      with open(os.path.join(output_dir, name, "seed0", "analysis", "sensitivity.json"),
                encoding="utf-8") as f:
        group = next(g for g in json.load(f)["groups"] if g["name"] == layer)
      values = np.array([e["errors"] for e in group["results"]["entries"]]) / N_ANALYSIS
      assert f"{100 * values.mean():.2f} ± {100 * values.std():.2f}" in line
  whole = _row(text, "all (the whole memory)")
  for full, _ in files.values():
    values = np.array(list(full.errors.values())) / N_ANALYSIS
    assert f"{100 * values.mean():.2f} ± {100 * values.std():.2f}" in whole
  # Confidence: ours (clean, at p, the gap) and the paper's row of Tab. 2 with its gap.
  paper = suites.load_paper("paper/tab2_cifar10.json")
  for name, label, model, _, w_max, _, clean, perturbed, _ in RUNS:
    line = _row(text, label)
    (err, rerr), (conf, conf_p) = paper.rows[(8, model)], paper.confidence[(8, model)]
    assert (f"| {100 * clean:.2f} | {100 * perturbed:.2f} | {100 * (clean - perturbed):.2f} | "
            f"5.00 | {model} | {err:.2f} | {conf:.2f} | {conf_p:.2f} | {conf - conf_p:.2f} | "
            f"{rerr[0]:.2f} | {rerr[1]:.2f} |") in line
    assert line.startswith(f"| {label} | {'–' if w_max == 'None' else w_max} |")
  assert "RQUANT 18.99" in text and "Tab. 2 beside ours is CIFAR10 at p = 1 %" in text
  assert ("gap by w_max: RQUANT 15.00 → CLIPPING 0.1 5.00 → CLIPPING 0.05 2.00: shrinks at every "
          "step") in text
  assert ("gap by label smoothing: CLIPPING 0.1 5.00 → CLIPPING 0.1 + LS 9.00: larger with label "
          "smoothing") in text
  # Redundancy: the share of each run, and its trend by w_max (1 → 10 → 8: not at every step).
  assert "| CLIPPING 0.05 | 8.00 |" in text
  assert ("RQUANT 1.00 → CLIPPING 0.1 10.00 → CLIPPING 0.05 8.00: does not grow with smaller "
          "w_max at every step") in text
  # Weight noise per magnitude (mean ± std over the draws), bit errors from eval_random.json.
  header = next(line for line in text.splitlines() if line.startswith("| Model | Err | noise"))
  assert header == "| Model | Err | noise 1 % | noise 10 % | bits p = 1 % |"
  for (name, label, *_), (_, noise) in zip(RUNS, files.values()):
    line = [line for line in text.splitlines() if line.startswith(f"| {label} |")][2]
    random = evaluation.Results.from_json(os.path.join(output_dir, name, "seed0",
                                                       "eval_random.json"))
    cells = [np.array([noise.errors[(s, m)] for s in (0, 1)]) / N for m in (0.01, 0.1)]
    cells.append(np.array(list(random.errors.values())) / N)
    assert line == (f"| {label} | 1.00 | " + " | ".join(
        f"{100 * v.mean():.2f} ± {100 * v.std():.2f}" for v in cells) + " |")
  means = [100 * np.mean([files[n][1].errors[(s, 0.1)] for s in (0, 1)]) / N
           for n in ("rq", "c1", "c05")]
  falls = means[0] > means[1] > means[2]
  assert (f"- Ours, by w_max, noise 10 %: RQUANT {means[0]:.2f} → CLIPPING 0.1 {means[1]:.2f} → "
          f"CLIPPING 0.05 {means[2]:.2f}: {'falls' if falls else 'does not fall'} at every step"
          ) in text
  # The chip map: per bit position in %, the expected changed bits.
  assert ("| RQUANT | 1.000 | 2.000 | 3.000 | 4.000 | 5.000 | 6.000 | 7.000 | 8.000 | 1,234 |"
          in text)
  assert "Simulated profiled chip2 at V/Vmin = 0.798, weights from bit address 0" in text
  for name, *_ in RUNS:
    for tool in ("sensitivity", "diagnose", "weight_noise", "chip_map"):
      copied = report.parent / "figures" / f"synthetic_analysis_{name}_{tool}.png"
      assert copied.read_bytes() == f"png of {name} {tool}".encode()
      assert f"(figures/{copied.name})" in text


def test_a_run_whose_analysis_is_not_finished_is_named_and_left_out(written, tmp_path):
  suite, output_dir, _ = written
  os.remove(os.path.join(output_dir, "c05", "seed0", "analysis", "chip_map.png"))
  loaded = suite_results.load_results(suite, output_dir)
  text = "\n".join(report_analysis.analysis_lines(suite, loaded, output_dir, str(tmp_path)))
  assert "Not analysed yet: CLIPPING 0.05 seed 0." in text
  assert "| CLIPPING 0.05 |" not in text and "| CLIPPING 0.1 |" in text
  assert "gap by w_max: RQUANT 15.00 → CLIPPING 0.1 5.00: shrinks at every step" in text


@pytest.mark.parametrize("tool, field, value, message", [
    ("diagnose", "rate", 0.01, "holds another model or other settings"),
    ("diagnose", "n", N, "holds another model or other settings"),
    ("chip_map", "voltage", 0.836, "holds another model or other settings"),
    ("chip_map", "offset", 8, "holds another model or other settings"),
    ("diagnose", "confidence", {}, "invalid bin/diagnose result"),
    ("chip_map", "per_bit", [0.1] * 9, "per_bit must have at most 8 items"),
    ("weight_noise", "clean_errors", N + 1, "clean_errors must be in"),
    ("sensitivity", "by", "tensor", "holds another model or other settings")])
def test_an_analysis_of_other_settings_or_a_damaged_file_is_refused(written, tool, field, value,
                                                                    message, tmp_path):
  suite, output_dir, _ = written
  path = os.path.join(output_dir, "c1", "seed0", "analysis", f"{tool}.json")
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  record[field] = value
  _write_json(path, record)
  loaded = suite_results.load_results(suite, output_dir)
  with pytest.raises(ValueError, match=message) as error:
    report_analysis.analysis_lines(suite, loaded, output_dir, str(tmp_path))
  assert path in str(error.value)
  if "other settings" in message:
    assert f"remove {os.path.dirname(path)} to analyse the run again" in str(error.value)


def test_other_magnitudes_or_another_model_are_refused(written, tmp_path):
  suite, output_dir, _ = written
  loaded = suite_results.load_results(suite, output_dir)
  for changed, tool in ((_suite(tmp_path, magnitudes=[1, 5]), "weight_noise"),
                        (_suite(tmp_path, num_chips=3), "sensitivity"),
                        (_suite(tmp_path, rate=5), "sensitivity"),
                        (_suite(tmp_path, test_limit=100), "sensitivity")):
    with pytest.raises(ValueError, match=f"{tool}.json holds another model or other"):
      report_analysis.analysis_lines(changed, loaded, output_dir, str(tmp_path))
  for name in ("rq", "c1", "c05", "ls"):
    loaded[name][0]["random"].model["digest"] = "retrained"
  with pytest.raises(ValueError, match="sensitivity.json holds another model"):
    report_analysis.analysis_lines(suite, loaded, output_dir, str(tmp_path))
