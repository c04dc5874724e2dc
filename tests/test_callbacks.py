"""The RErr monitor (tfbet.callbacks): bin/eval's counts during fit, checkpoints on RErr."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tfbet import callbacks
from tfbet import chip_models
from tfbet import evaluation
from tfbet import quantize_configs
from tfbet import training
from tfbet.cli import eval_lib
from tfbet.cli import gin_utils
from tfbet.cli import training_job
from tfbet.compat import keras


def _data(n, seed):
  """8x8x1 images; the class (of 3) says which halves of the image are bright on average."""
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(n, 8, 8, 1)).astype(np.float32)
  labels = ((images[:, :4].mean(axis=(1, 2, 3)) > 0).astype(np.int64)
            + (images[:, 4:].mean(axis=(1, 2, 3)) > 0))
  return images, labels


def _trainer(scheme="global", seed=0):
  qmodel = quantize_configs.quantize_model(helpers.small_cnn(seed=seed), scheme)
  trainer = training.BitErrorTrainer(qmodel, method="randbet", rate=0.05, loss_threshold=100.0,
                                     seed=seed)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1))
  return trainer


def _mean_rerr(results, rate):
  """Mean over chips of errors / n at ``rate``, from the counts (numpy, not Results.summary)."""
  return np.mean([results.errors[(chip, rate, 0)] / results.n for chip in results.chips])


def test_the_monitors_counts_are_bin_evals_counts_on_the_model_saved_at_that_epoch(tmp_path):
  x, y = _data(96, seed=1)
  x_eval, y_eval = _data(48, seed=2)
  rates = [0.01, 0.1]
  seeds = [1000, 1003]
  monitor = callbacks.RErrMonitor(
      tf.data.Dataset.from_tensor_slices((x_eval, y_eval)).batch(16), rates=rates, chips=seeds,
      max_examples=40)
  trainer = _trainer()
  saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.h5"))
  history = trainer.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
                        callbacks=[monitor, saver])
  assert sorted(monitor.results) == [1, 2]
  # bin/eval's in-process path on the saved model: its loader, Evaluator and run_resumable, on
  # the first 40 examples in batches of 16 (what --test_limit=40 --batch_size=16 reads).
  chip_list = eval_lib.make_chips("random", seeds)
  reference_set = tf.data.Dataset.from_tensor_slices((x_eval[:40], y_eval[:40])).batch(16)
  for epoch in (1, 2):
    model = training_job.load_model(str(tmp_path / f"epoch{epoch}.h5"))
    reference = eval_lib.run_resumable(evaluation.Evaluator(model, reference_set), chip_list,
                                       rates, None, progress=None, allow_high_rate=True)
    measured = monitor.results[epoch]
    assert measured.n == reference.n == 40
    assert measured.errors == reference.errors
    assert measured.clean_errors == reference.clean_errors
    assert measured.model["digest"] == reference.model["digest"]  # the same weights
    assert measured.data_digest == reference.data_digest
    for rate in rates:
      assert history.history[callbacks.rerr_key(rate)][epoch - 1] == pytest.approx(
          _mean_rerr(reference, rate), abs=1e-12)
    assert history.history["rerr_clean"][epoch - 1] == reference.clean_errors / 40
  assert any(count > 0 for count in monitor.results[2].errors.values())
  assert set(history.history) >= {"rerr_p0.01", "rerr_p0.1", "rerr_clean", "loss", "error"}


def test_modelcheckpoint_on_rerr_keeps_the_most_robust_epoch(tmp_path):
  x, y = _data(96, seed=3)
  x_eval, y_eval = _data(64, seed=4)
  qmodel = quantize_configs.quantize_model(helpers.small_cnn(seed=2), "rquant")
  qmodel.compile(keras.optimizers.Adam(0.03),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  monitor = callbacks.RErrMonitor((x_eval, y_eval), rates=[0.05], chips=3, batch_size=20)
  best = keras.callbacks.ModelCheckpoint(str(tmp_path / "best{epoch}.h5"), monitor="rerr_p0.05",
                                         mode="min", save_best_only=True)
  history = qmodel.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0,
                       callbacks=[monitor, best]).history["rerr_p0.05"]
  assert len(history) == 6
  improved, lowest = [], np.inf
  for epoch, value in enumerate(history, start=1):
    if value < lowest:
      improved.append(epoch)
      lowest = value
  saved = sorted(int(os.path.basename(p)[4:-3]) for p in glob.glob(str(tmp_path / "best*.h5")))
  assert saved == improved
  # The file kept last holds the weights of the lowest RErr.
  model = training_job.load_model(str(tmp_path / f"best{saved[-1]}.h5"))
  chip_list = [chip_models.RandomChip(seed) for seed in chip_models.default_chip_seeds(3)]
  reference = evaluation.evaluate(model, [(x_eval[i:i + 20], y_eval[i:i + 20])
                                          for i in range(0, 64, 20)], chip_list, [0.05],
                                  progress=None)
  assert _mean_rerr(reference, 0.05) == pytest.approx(min(history), abs=1e-12)


def test_every_n_epochs_leaves_other_epochs_out_and_does_not_change_training():
  x, y = _data(64, seed=5)
  x_eval, y_eval = _data(32, seed=6)

  def fit(monitored):
    trainer = _trainer(seed=3)
    monitor = callbacks.RErrMonitor((x_eval, y_eval), rates=[0.02, 0.2], chips=[7, 8],
                                    every_n_epochs=2)
    history = trainer.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                          callbacks=[monitor] if monitored else [])
    return history.history, monitor, training_job.weights_digest(trainer.model)

  first, monitor, digest = fit(True)
  again, _, digest_again = fit(True)
  plain, _, digest_plain = fit(False)
  assert sorted(monitor.results) == [2]  # epochs 1 and 3 are not measured
  assert len(first["loss"]) == 3 and len(first["rerr_p0.2"]) == 1
  assert monitor.keys() == ["rerr_p0.02", "rerr_p0.2", "rerr_clean"]
  assert first == again  # same seeds, identical numbers
  assert digest == digest_again == digest_plain  # the monitor leaves training as it was
  assert first["loss"] == plain["loss"]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(rates=[0.01, 0.01]), ValueError, "rates must be distinct"),
    (dict(rates=[1.0]), ValueError, "rates[0]=1 is a fraction of bits"),
    (dict(rates=[float("nan")]), ValueError, "rates[0] must be a finite number in [0.0, 1.0]"),
    (dict(rates=0.01), TypeError, "rates must be a non-empty list"),
    (dict(rates=[]), TypeError, "rates must be a non-empty list"),
    (dict(chips=0), ValueError, "chips must be in [1, 1000], got 0"),
    (dict(chips=True), TypeError, "chips must be a number of chips"),
    (dict(chips=[1, -2]), ValueError, "chips[1] must be in [0, 9223372036854775807], got -2"),
    (dict(chips=[3, 3]), ValueError, "chips must be distinct"),
    (dict(chips=["a"]), TypeError, "chips[0] must be a chip seed or a random chip"),
    (dict(every_n_epochs=0), ValueError, "every_n_epochs must be in [1, inf], got 0"),
    (dict(every_n_epochs=1.5), TypeError, "every_n_epochs must be an integer"),
    (dict(max_examples=0), ValueError, "max_examples must be in [1, inf], got 0"),
    (dict(batch_size=0), ValueError, "batch_size must be in [1, inf], got 0"),
    (dict(allow_high_rate=1), TypeError, "allow_high_rate must be True or False"),
])
def test_bad_arguments_are_refused_naming_the_argument_and_range(kwargs, error, message):
  with pytest.raises(error) as raised:
    callbacks.RErrMonitor(_data(8, seed=0), **kwargs)
  assert message in str(raised.value)


def test_bad_data_and_models_are_refused_naming_what_to_pass():
  images, labels = _data(8, seed=0)
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
  with pytest.raises(ValueError, match="batch_size applies to array data"):
    callbacks.RErrMonitor(dataset, batch_size=4)
  with pytest.raises(ValueError, match=r"np.argmax\(y, axis=-1\)"):
    callbacks.RErrMonitor((images, np.eye(3)[labels]))
  with pytest.raises(ValueError, match="8 images and 7 labels"):
    callbacks.RErrMonitor((images, labels[:7]))
  with pytest.raises(TypeError, match="data must be"):
    callbacks.RErrMonitor(images)
  with pytest.raises(ValueError, match="train.rerr_monitor = @RErrMonitor, without parentheses"):
    callbacks.RErrMonitor()
  float_model = helpers.small_cnn()
  float_model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  with pytest.raises(TypeError, match="not quantized"):
    float_model.fit(images, labels, epochs=1, verbose=0,
                    callbacks=[callbacks.RErrMonitor((images, labels))])


def test_profiled_chips_are_refused():
  chip = chip_models.ProfiledChip("map", [0.8], np.full((1, 4, 8), 0.1), np.full((1, 4, 8), 0.1))
  with pytest.raises(ValueError, match="profiled chip"):
    callbacks.RErrMonitor(_data(8, seed=0), chips=[chip])


def _tensorboard_scalars(directory, tag):
  """The values TensorBoard holds for ``tag`` under ``directory``, in step order."""
  values = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return [values[step] for step in sorted(values)]


@pytest.mark.slow  # about 75 s on the shared 2 cores (load 8), most of it loading MNIST
def test_bin_train_logs_rerr_through_gin_into_result_json_and_tensorboard(tmp_path, real_mnist):  # pylint: disable=unused-argument
  import gin  # pylint: disable=g-import-not-at-top
  output_dir = tmp_path / "run"
  try:
    gin_utils.parse(["experiments/cpu/tiny.gin"], [
        "train.epochs = 2", "train.verbose = 0", "train.evaluate_every_epoch = False",
        "load_data.train_limit = 128",
        "train.rerr_monitor = @RErrMonitor", "RErrMonitor.rates = [0.01, 0.05]",
        "RErrMonitor.chips = 2", "RErrMonitor.max_examples = 64"])
    training_job.train(str(output_dir))
    operative = (output_dir / "operative_config.gin").read_text()
  finally:
    gin.clear_config()
  assert "train.rerr_monitor = @RErrMonitor" in operative and "RErrMonitor.chips = 2" in operative
  history = json.loads((output_dir / "result.json").read_text())["history"]
  assert len(history["loss"]) == len(history["rerr_p0.01"]) == len(history["rerr_clean"]) == 2
  # The last epoch's values are bin/eval's on the exported model, same chips and examples.
  try:
    model, data, _ = eval_lib.load_model_and_data(run_dir=str(output_dir), test_limit=64)
    reference = eval_lib.run_resumable(
        evaluation.Evaluator(model, data.test_dataset()),
        eval_lib.make_chips("random", [1000, 1001]), [0.01, 0.05], None, progress=None,
        allow_high_rate=True)
  finally:
    gin.clear_config()
  assert reference.n == 64
  for rate in (0.01, 0.05):
    assert history[f"rerr_p{rate}"][-1] == pytest.approx(_mean_rerr(reference, rate), abs=1e-12)
  assert history["rerr_clean"][-1] == reference.clean_errors / 64
  logged = _tensorboard_scalars(str(output_dir / "tensorboard" / "train"), "epoch_rerr_p0.05")
  assert logged == pytest.approx(history["rerr_p0.05"], abs=1e-7)  # float32 in the event file


@pytest.mark.parametrize("bindings, message", [
    (["RErrMonitor.rates = [0.01]"],
     "RErrMonitor.rates is bound but RErrMonitor is not used; add 'train.rerr_monitor = "
     "@RErrMonitor'"),
    (["train.rerr_monitor = @RErrMonitor()"], "without parentheses"),
    (["train.rerr_monitor = @RErrMonitor", "RErrMonitor.every_n_epochs = 0"],
     "every_n_epochs must be in [1, inf], got 0"),
    (["train.rerr_monitor = 3"], "train.rerr_monitor must be @RErrMonitor or None"),
])
def test_bin_train_refuses_a_monitor_config_before_any_work(
    tmp_path, bindings, message, real_mnist):  # pylint: disable=unused-argument
  import gin  # pylint: disable=g-import-not-at-top
  try:
    gin_utils.parse(["experiments/cpu/tiny.gin"], ["load_data.train_limit = 64", *bindings])
    with pytest.raises(ValueError) as raised:
      training_job.train(str(tmp_path / "run"))
  finally:
    gin.clear_config()
  assert message in str(raised.value)
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_what_the_job_passes_to_the_monitor_cannot_be_bound():
  import gin  # pylint: disable=g-import-not-at-top
  try:
    for binding in ("RErrMonitor.data = 1", "RErrMonitor.batch_size = 8"):
      with pytest.raises(ValueError, match=binding.split(".")[1].split(" ")[0]):
        gin_utils.parse([], [binding])
  finally:
    gin.clear_config()
