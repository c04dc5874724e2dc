"""BitErrorTrainer (Alg. 1 and variants) against hand computations."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from tfbet import chips
from tfbet import memory
from tfbet import quantize_configs
from tfbet import training
from tfbet.compat import keras

from tests.helpers import small_cnn


def _batch(n=8, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, 8, 8, 1)).astype(np.float32), np.arange(n) % 3


def _trainer(method="randbet", rate=0.05, threshold=1e9, lr=0.1, **kwargs):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method=method, rate=rate, loss_threshold=threshold,
                                     seed=3, weight_decay=0.0, **kwargs)
  trainer.compile(optimizer=keras.optimizers.SGD(lr))
  return trainer


def _gradients(qmodel, x, y):
  with tf.GradientTape() as tape:
    logits = qmodel(x, training=True)
    loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
        tf.one_hot(y, 3), logits, from_logits=True))
  return tape.gradient(loss, qmodel.trainable_variables)


def test_one_randbet_step_adds_clean_and_perturbed_gradients():
  trainer = _trainer()
  qmodel, x, y = trainer.model, *_batch()
  mem = memory.layout(qmodel)
  before = [v.numpy() for v in qmodel.trainable_variables]
  clean = _gradients(qmodel, x, y)
  memory.load_chip(mem, chips.RandomChip((3 + 1) * 2 ** 40), 0.05)  # the seed of step 0
  assert sum(int(np.count_nonzero(s.qvars["flip"].numpy())) for s in mem.slots) > 0
  perturbed = _gradients(qmodel, x, y)
  memory.clear_masks(mem)
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == 1.0
  for var, w0, g, gp in zip(qmodel.trainable_variables, before, clean, perturbed):
    np.testing.assert_allclose(var.numpy(), w0 - 0.1 * (g.numpy() + gp.numpy()), rtol=1e-5,
                               atol=1e-6)
  # The masks are cleared again after the step: the model is clean for evaluation.
  assert all(not np.any(s.qvars["flip"].numpy()) for s in mem.slots)


def _clean_and_perturbed_gradients(trainer, x, y):
  """The reference gradients of step 0: clean, and under the chip of step 0 (seed 3)."""
  qmodel, mem = trainer.model, trainer.layout
  clean = _gradients(qmodel, x, y)
  memory.load_chip(mem, chips.RandomChip((3 + 1) * 2 ** 40), 0.05)
  perturbed = _gradients(qmodel, x, y)
  memory.clear_masks(mem)
  return clean, perturbed


def test_averaged_gradients_make_half_the_summed_update_of_plain_sgd():
  trainer = _trainer(gradient_combination="average")
  qmodel, x, y = trainer.model, *_batch()
  before = [v.numpy() for v in qmodel.trainable_variables]
  clean, perturbed = _clean_and_perturbed_gradients(trainer, x, y)
  assert trainer.train_on_batch(x, y, return_dict=True)["injecting"] == 1.0
  for var, w0, g, gp in zip(qmodel.trainable_variables, before, clean, perturbed):
    summed = 0.1 * (g.numpy() + gp.numpy())
    np.testing.assert_allclose(w0 - var.numpy(), summed / 2, rtol=1e-5, atol=1e-7)


def test_averaging_keeps_the_clean_gradient_unscaled_while_not_injecting():
  trainer = _trainer(threshold=0.0, gradient_combination="average")
  qmodel, x, y = trainer.model, *_batch()
  before = [v.numpy() for v in qmodel.trainable_variables]
  clean = _gradients(qmodel, x, y)
  assert trainer.train_on_batch(x, y, return_dict=True)["injecting"] == 0.0
  for var, w0, g in zip(qmodel.trainable_variables, before, clean):
    np.testing.assert_allclose(var.numpy(), w0 - 0.1 * g.numpy(), rtol=1e-5, atol=1e-6)


def test_weight_decay_is_added_once_per_optimizer_update_not_once_per_gradient():
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method="randbet", rate=0.05, loss_threshold=1e9,
                                     seed=3, weight_decay=0.01)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1))
  x, y = _batch()
  before = [v.numpy() for v in qmodel.trainable_variables]
  clean, perturbed = _clean_and_perturbed_gradients(trainer, x, y)
  trainer.train_on_batch(x, y)
  for var, w0, g, gp in zip(qmodel.trainable_variables, before, clean, perturbed):
    np.testing.assert_allclose(var.numpy(), w0 - 0.1 * (g.numpy() + gp.numpy() + 0.01 * w0),
                               rtol=1e-5, atol=1e-6)


def test_no_perturbed_pass_while_the_clean_loss_is_above_the_threshold():
  trainer = _trainer(threshold=0.0)
  qmodel, x, y = trainer.model, *_batch()
  before = [v.numpy() for v in qmodel.trainable_variables]
  clean = _gradients(qmodel, x, y)
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == 0.0
  for var, w0, g in zip(qmodel.trainable_variables, before, clean):
    np.testing.assert_allclose(var.numpy(), w0 - 0.1 * g.numpy(), rtol=1e-5, atol=1e-6)


def test_injection_stays_on_once_the_loss_was_below_the_threshold():
  trainer = _trainer(threshold=1e9)
  x, y = _batch()
  assert trainer.train_on_batch(x, y, return_dict=True)["injecting"] == 1.0
  # A threshold no loss is below, seen by a retraced step: only the sticky flag injects now.
  trainer.loss_threshold = -1.0
  trainer.make_train_function(force=True)
  before = [v.numpy() for v in trainer.model.trainable_variables]
  clean = _gradients(trainer.model, x, y)
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == 1.0 and logs["perturbed_loss"] > 0
  # ... and the update had a perturbed part: it is not the clean gradient step alone.
  moved = [v.numpy() - (w0 - 0.1 * g.numpy())
           for v, w0, g in zip(trainer.model.trainable_variables, before, clean)]
  assert max(float(np.max(np.abs(d))) for d in moved) > 1e-4


def test_randbet_draws_a_fresh_chip_every_step_and_pattbet_the_same_pattern():
  trainer = _trainer()
  mem = trainer.layout

  def masks_at(iteration):
    trainer.optimizer.iterations.assign(iteration)
    trainer._method.load_errors(trainer)  # pylint: disable=protected-access
    return np.concatenate([s.qvars["flip"].numpy().ravel() for s in mem.slots])

  assert not np.array_equal(masks_at(0), masks_at(1))
  chip = chips.RandomChip(77)
  pattbet = _trainer(method="pattbet", pattern=chip, pattern_condition=0.05)
  mem = pattbet.layout
  trainer = pattbet
  first, second = masks_at(0), masks_at(5)
  np.testing.assert_array_equal(first, second)
  np.testing.assert_array_equal(first, chip.masks(mem.num_weights, 8, 0.05)[0])


def test_curricular_rate_rises_linearly_from_p_over_20_to_p_in_the_first_half():
  trainer = _trainer(method="curricular", rate=0.02, curriculum_steps=100)
  for iteration, expected in ((0, 0.001), (50, 0.001 + 0.019 * 0.5), (100, 0.02), (180, 0.02)):
    trainer.optimizer.iterations.assign(iteration)
    assert float(trainer.current_rate()) == pytest.approx(expected)


def test_alternating_randbet_keeps_weights_inside_the_ranges_after_the_clean_update():
  trainer = _trainer(method="alternating", lr=0.5)
  qmodel, x, y = trainer.model, *_batch()
  slots = memory.layout(qmodel).slots
  # The reference: the ranges [-max|w|, max|w|] (rquant) after the clean SGD step alone.
  clean = dict(zip([v.name for v in qmodel.trainable_variables], _gradients(qmodel, x, y)))
  bounds = [float(np.max(np.abs(s.variable.numpy() - 0.5 * clean[s.variable.name].numpy())))
            for s in slots]
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == 1.0 and np.isfinite(logs["perturbed_loss"])
  assert int(trainer.optimizer.iterations.numpy()) == 1  # two updates, one step
  reached = []
  for slot, bound in zip(slots, bounds):
    w = np.abs(slot.variable.numpy())
    assert np.max(w) <= bound * (1 + 1e-6), slot.name
    reached.append(np.isclose(np.max(w), bound, rtol=1e-6))
  # The perturbed update pushed weights past the clean ranges, and they were clipped back.
  assert any(reached)


def test_paper_learning_rate_steps_at_two_three_and_four_fifths():
  schedule = training.paper_learning_rate(100)
  # Called with the number of steps done: step 40 (0-based) is the first after 2/5 of 100.
  got = [float(schedule(step)) for step in (0, 39, 40, 59, 60, 79, 80, 99)]
  np.testing.assert_allclose(got, [0.05, 0.05, 0.005, 0.005, 5e-4, 5e-4, 5e-5, 5e-5],
                             rtol=1e-6)
  assert float(training.paper_learning_rate(1)(0)) == pytest.approx(0.05)


class _RecordLearningRate(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.rates = []

  def on_train_batch_end(self, batch, logs=None):
    self.rates.append(float(self.model.optimizer.learning_rate))


@pytest.mark.parametrize("method,threshold", [
    ("randbet", 1e9), ("alternating", 1e9), ("alternating", -1.0)])
def test_learning_rate_drops_after_two_three_and_four_fifths_of_the_steps(method, threshold):
  # Alternating with threshold 1e9 makes two updates in every step, with -1 one; the schedule
  # must not care.
  trainer = _trainer(method=method, threshold=threshold)
  trainer.compile(optimizer=training.paper_optimizer(10, momentum=0.0))
  x, y = _batch(n=80)
  record = _RecordLearningRate()
  logs = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[record])
  assert logs.history["injecting"][0] == (1.0 if threshold > 0 else 0.0)
  np.testing.assert_allclose(record.rates, [0.05] * 4 + [0.005] * 2 + [5e-4] * 2 + [5e-5] * 2,
                             rtol=1e-6)
  assert int(trainer.optimizer.iterations.numpy()) == 10


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="sgd"), "method"), (dict(rate=1.5), "rate"),
    (dict(method="curricular"), "curriculum_steps"), (dict(method="pattbet"), "pattern"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(rate=0.6), "rate=0.6 .*looks like a percent.*allow_high_rate=True"),
    (dict(rate=1.5, allow_high_rate=True), "rate"),
    (dict(gradient_combination="mean"), "gradient_combination"),
    (dict(method="alternating", gradient_combination="average"), "gradient_combination")])
def test_bad_trainer_arguments_raise_clear_errors(kwargs, match):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  with pytest.raises(ValueError, match=match):
    training.BitErrorTrainer(qmodel, **kwargs)


def test_a_rate_above_one_half_is_accepted_when_allow_high_rate_says_it_is_meant():
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  assert training.BitErrorTrainer(qmodel, rate=0.75, allow_high_rate=True).rate == 0.75


def _paper_cross_entropy(logits, labels, smoothing):
  """numpy: the paper's smoothed targets (1 - s true, s / (K - 1) others) against softmax."""
  k = logits.shape[-1]
  targets = np.full(logits.shape, smoothing / (k - 1))
  targets[np.arange(len(labels)), labels] = 1.0 - smoothing
  log_softmax = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  return -np.sum(targets * log_softmax, -1)


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("from_logits", [True, False])
def test_label_smoothing_targets_are_the_papers_0_9_and_0_1_over_k_minus_1(one_hot, from_logits):
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(6, 10)).astype(np.float64)
  labels = np.array([0, 3, 9, 3, 5, 1])
  expected = np.mean(_paper_cross_entropy(logits, labels, 0.1))
  y = np.eye(10, dtype=np.float32)[labels] if one_hot else labels
  y_pred = logits if from_logits else tf.nn.softmax(logits).numpy()
  loss = training.CrossEntropy(from_logits=from_logits, label_smoothing=0.1)
  assert float(loss(y, tf.constant(y_pred, tf.float32))) == pytest.approx(expected, rel=1e-5)
  # Keras' targets (0.91 / 0.01) give another loss: the reference can tell them apart.
  keras_targets = np.eye(10)[labels] * 0.9 + 0.01
  log_softmax = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  assert np.mean(-np.sum(keras_targets * log_softmax, -1)) != pytest.approx(expected, rel=1e-4)


def test_the_trainers_label_smoothing_is_the_papers():
  qmodel = quantize_configs.quantize_model(_dense(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method="clean", label_smoothing=0.2,
                                     weight_decay=0.0)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1))
  x, y = _dense_data()
  logits = trainer.predict(x, verbose=0).astype(np.float64)
  loss = trainer.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)["loss"]
  assert loss == pytest.approx(np.mean(_paper_cross_entropy(logits, y, 0.2)), rel=1e-5)


# -- the Keras contract: compile, fit, callbacks, evaluate, predict, save ----------------------

def _dense(activation=None, seed=2):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((6,))
  x = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
  outputs = keras.layers.Dense(3, activation=activation, name="out")(x)
  return keras.Model(inputs, outputs)


def _dense_data(n=8, seed=1):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, 6)).astype(np.float32), np.arange(n) % 3


def _dense_trainer(activation=None, method="clean", lr=0.1, threshold=1e9, **compile_kwargs):
  qmodel = quantize_configs.quantize_model(_dense(activation), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method=method, rate=0.05, loss_threshold=threshold,
                                     seed=3, weight_decay=0.0)
  trainer.compile(optimizer=keras.optimizers.SGD(lr), **compile_kwargs)
  return trainer


def _loss_and_grads(qmodel, x, loss_fn):
  """An independent reference: the loss of the quantized model and its gradients."""
  with tf.GradientTape() as tape:
    loss = loss_fn(qmodel(x, training=True))
  return float(loss), [g.numpy() for g in tape.gradient(loss, qmodel.trainable_variables)]


def _assert_sgd_step(qmodel, before, grads, lr=0.1):
  for var, w0, g in zip(qmodel.trainable_variables, before, grads):
    np.testing.assert_allclose(var.numpy(), w0 - lr * g, rtol=1e-5, atol=1e-6)


def _mse(y_onehot):
  return lambda out: tf.reduce_mean(tf.reduce_mean((out - y_onehot) ** 2, -1))


def test_compiled_mse_loss_and_its_loss_weight_are_what_the_step_minimizes():
  x, y = _dense_data()
  y_onehot = np.eye(3, dtype=np.float32)[y]
  for loss_weights, scale in ((None, 1.0), ([0.5], 0.5)):
    trainer = _dense_trainer(loss="mse", loss_weights=loss_weights)
    qmodel = trainer.model
    before = [v.numpy() for v in qmodel.trainable_variables]
    mse, grads = _loss_and_grads(qmodel, x, _mse(y_onehot))
    cross_entropy, _ = _loss_and_grads(qmodel, x, lambda out: tf.reduce_mean(
        keras.losses.categorical_crossentropy(y_onehot, out, from_logits=True)))
    logs = trainer.train_on_batch(x, y_onehot, return_dict=True)
    assert logs["loss"] == pytest.approx(scale * mse, rel=1e-5)
    assert abs(logs["loss"] - scale * cross_entropy) > 0.1
    _assert_sgd_step(qmodel, before, [scale * g for g in grads])


@pytest.mark.parametrize("method,kwargs", [
    ("clean", {}), ("randbet", {}), ("pattbet", dict(pattern=chips.RandomChip(5),
                                                    pattern_condition=0.05)),
    ("curricular", dict(curriculum_steps=4)), ("alternating", {})])
def test_every_method_fits_the_compiled_loss_with_sample_weights_and_metrics(method, kwargs):
  x, y = _dense_data()
  y_onehot = np.eye(3, dtype=np.float32)[y]
  weight = np.array([1, 1, 1, 1, 0, 0, 2, 2], np.float32)
  qmodel = quantize_configs.quantize_model(_dense(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method=method, rate=0.05, loss_threshold=1e9,
                                     seed=3, weight_decay=0.0, **kwargs)
  trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["accuracy"])
  mse = float(np.sum(weight * np.mean((qmodel(x).numpy() - y_onehot) ** 2, -1)) / len(y))
  history = trainer.fit(x, y_onehot, sample_weight=weight, batch_size=8, epochs=1, verbose=0)
  assert history.history["loss"][0] == pytest.approx(mse, rel=1e-5)
  assert "accuracy" in history.history
  if method != "clean":
    assert history.history["injecting"][0] == 1.0
    assert np.isfinite(history.history["perturbed_loss"][0])


def test_one_hot_and_sparse_labels_give_the_same_step():
  x, y = _dense_data()
  sparse, one_hot = _dense_trainer(method="randbet"), _dense_trainer(method="randbet")
  logs_sparse = sparse.train_on_batch(x, y, return_dict=True)
  logs_one_hot = one_hot.train_on_batch(x, np.eye(3, dtype=np.float32)[y], return_dict=True)
  assert logs_sparse["injecting"] == 1.0
  for key in ("loss", "error", "perturbed_loss", "perturbed_error"):
    assert logs_sparse[key] == pytest.approx(logs_one_hot[key], rel=1e-6), key
  for a, b in zip(sparse.model.get_weights(), one_hot.model.get_weights()):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_sample_weights_enter_the_clean_and_the_perturbed_gradients():
  x, y = _dense_data()
  weight = np.array([1.0, 2.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0], np.float32)
  trainer = _dense_trainer(method="randbet")
  qmodel, mem = trainer.model, trainer.layout
  before = [v.numpy() for v in qmodel.trainable_variables]

  def weighted_cross_entropy(out):  # Keras' SUM_OVER_BATCH_SIZE: divided by the batch size 8
    per_example = keras.losses.categorical_crossentropy(np.eye(3)[y], out, from_logits=True)
    return tf.reduce_sum(weight * per_example) / len(y)

  clean_loss, clean = _loss_and_grads(qmodel, x, weighted_cross_entropy)
  memory.load_chip(mem, chips.RandomChip((3 + 1) * 2 ** 40), 0.05)  # the seed of step 0
  perturbed_loss, perturbed = _loss_and_grads(qmodel, x, weighted_cross_entropy)
  memory.clear_masks(mem)
  logs = trainer.train_on_batch(x, y, sample_weight=weight, return_dict=True)
  assert logs["injecting"] == 1.0
  assert logs["loss"] == pytest.approx(clean_loss, rel=1e-5)
  assert logs["perturbed_loss"] == pytest.approx(perturbed_loss, rel=1e-5)
  _assert_sgd_step(qmodel, before, [g + gp for g, gp in zip(clean, perturbed)])


def test_class_weights_act_like_the_equivalent_sample_weights():
  x, y = _dense_data(n=12)
  class_weight = {0: 1.0, 1: 0.0, 2: 3.0}
  by_class, by_sample = _dense_trainer(method="randbet"), _dense_trainer(method="randbet")
  by_class.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, class_weight=class_weight)
  by_sample.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                sample_weight=np.array([class_weight[c] for c in y], np.float32))
  unweighted = _dense_trainer(method="randbet")
  unweighted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
  for a, b, c in zip(by_class.model.get_weights(), by_sample.model.get_weights(),
                     unweighted.model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert any(not np.allclose(a, c) for a, c in zip(by_class.model.get_weights(),
                                                   unweighted.model.get_weights()))


@pytest.mark.parametrize("loss", [None, keras.losses.SparseCategoricalCrossentropy()])
def test_a_softmax_model_is_trained_on_its_probabilities(loss):
  x, y = _dense_data()
  trainer = _dense_trainer(activation="softmax", loss=loss, run_eagerly=True)
  qmodel = trainer.model
  assert training.outputs_probabilities(qmodel)
  before = [v.numpy() for v in qmodel.trainable_variables]
  loss_value, grads = _loss_and_grads(qmodel, x, lambda p: -tf.reduce_mean(
      tf.math.log(tf.gather(p, y, batch_dims=1))))
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["loss"] == pytest.approx(loss_value, rel=1e-5)
  _assert_sgd_step(qmodel, before, grads)


def test_the_default_loss_refuses_a_model_whose_output_it_cannot_read():
  inputs = keras.Input((6,))
  outputs = keras.layers.Lambda(tf.nn.softmax, name="my_softmax")(keras.layers.Dense(3)(inputs))
  qmodel = quantize_configs.quantize_model(keras.Model(inputs, outputs), "rquant")
  trainer = training.BitErrorTrainer(qmodel)
  with pytest.raises(ValueError, match="my_softmax.*explicit loss"):
    trainer.compile()
  trainer.compile(loss=training.CrossEntropy(from_logits=False))


def test_compiled_metrics_are_reported_next_to_the_error():
  x, y = _dense_data()
  trainer = _dense_trainer(metrics=[
      "accuracy", keras.metrics.SparseCategoricalCrossentropy(name="xent", from_logits=True)])
  logits = trainer.model(x).numpy().astype(np.float64)
  expected_error = float(np.mean(np.argmax(logits, -1) != y))
  log_softmax = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  cross_entropy = float(-np.mean(log_softmax[np.arange(len(y)), y]))
  logs = trainer.evaluate(x, y, verbose=0, return_dict=True)
  assert logs["error"] == pytest.approx(expected_error)
  assert logs["accuracy"] == pytest.approx(1.0 - expected_error)
  assert logs["xent"] == pytest.approx(cross_entropy, rel=1e-5)
  assert logs["loss"] == pytest.approx(cross_entropy, rel=1e-5)


def test_summary_predict_save_and_load_work_before_and_after_fit(tmp_path):
  x, y = _dense_data()
  trainer = _dense_trainer(method="randbet")
  lines = []
  trainer.summary(print_fn=lines.append)
  assert str(trainer.count_params()) in "".join(lines).replace(",", "")
  trainer.fit(x, y, epochs=1, verbose=0)
  np.testing.assert_allclose(trainer.predict(x, verbose=0), trainer.model(x).numpy(), rtol=1e-6)
  trainer.save(str(tmp_path / "model.h5"))
  with quantize_configs.quantize_scope():
    loaded = keras.models.load_model(str(tmp_path / "model.h5"), compile=False)
  np.testing.assert_array_equal(loaded(x).numpy(), trainer.model(x).numpy())
  trainer.save_weights(str(tmp_path / "weights"))
  other = _dense_trainer(method="randbet")
  other.load_weights(str(tmp_path / "weights"))
  np.testing.assert_array_equal(other.predict(x, verbose=0), trainer.predict(x, verbose=0))


def test_bad_compile_arguments_raise_clear_errors():
  qmodel = quantize_configs.quantize_model(_dense(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, label_smoothing=0.1)
  with pytest.raises(ValueError, match="label_smoothing"):
    trainer.compile(loss="mse")
  inputs = keras.Input((6,))
  two_outputs = keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(2)(inputs)])
  with pytest.raises(ValueError, match="one output"):
    training.BitErrorTrainer(quantize_configs.quantize_model(two_outputs, "rquant"))


class _StopAfter(keras.callbacks.Callback):
  """Simulates a crash at the end of an epoch."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      raise RuntimeError("crash")


def test_standard_callbacks_act_across_epochs(tmp_path):
  x, y = _dense_data(n=16)
  fit = dict(x=x, y=y, batch_size=4, shuffle=False, verbose=0)
  # EarlyStopping: no epoch improves the loss by 10, so it stops after patience + 1 epochs.
  history = _dense_trainer(method="randbet").fit(epochs=6, callbacks=[
      keras.callbacks.EarlyStopping("loss", min_delta=10.0, patience=1)], **fit)
  assert len(history.history["loss"]) == 2
  # ReduceLROnPlateau: the same plateau halves the learning rate.
  trainer = _dense_trainer(method="randbet")
  trainer.fit(epochs=2, callbacks=[keras.callbacks.ReduceLROnPlateau(
      "loss", factor=0.5, min_delta=10.0, patience=0)], **fit)
  assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.05)
  # ModelCheckpoint: a loadable model file per epoch, equal to the trained model.
  trainer = _dense_trainer(method="randbet")
  trainer.fit(epochs=2, callbacks=[
      keras.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.h5")),
      keras.callbacks.TensorBoard(str(tmp_path / "tensorboard"))], **fit)
  with quantize_configs.quantize_scope():
    checkpoint = keras.models.load_model(str(tmp_path / "epoch2.h5"), compile=False)
  np.testing.assert_array_equal(checkpoint(x).numpy(), trainer.predict(x, verbose=0))
  assert os.path.exists(tmp_path / "epoch1.h5")
  # TensorBoard: the epoch logs, the error and the perturbed loss included.
  tags = set()
  for path in glob.glob(str(tmp_path / "tensorboard" / "train" / "*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert {"epoch_loss", "epoch_error", "epoch_perturbed_loss"} <= tags
  # BackupAndRestore: a run that crashed after epoch 2 resumes at epoch 3 and ends where an
  # uninterrupted run ends (same weights, same bit errors: the step counter is restored too).
  backup = str(tmp_path / "backup")
  crashed = _dense_trainer(method="randbet")
  with pytest.raises(RuntimeError, match="crash"):
    crashed.fit(epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup), _StopAfter(1)],
                **fit)
  resumed = _dense_trainer(method="randbet")
  history = resumed.fit(epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup)], **fit)
  assert len(history.history["loss"]) == 2
  uninterrupted = _dense_trainer(method="randbet")
  uninterrupted.fit(epochs=4, **fit)
  for a, b in zip(resumed.model.get_weights(), uninterrupted.model.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_a_fit_that_never_injects_warns_that_the_model_was_trained_clean(caplog):
  import logging  # pylint: disable=g-import-not-at-top
  trainer = _trainer(threshold=-1.0)  # no loss is below it
  x, y = _batch()
  with caplog.at_level(logging.WARNING):
    history = trainer.fit(x, y, epochs=2, verbose=0)
  assert history.history["injecting"] == [0.0, 0.0]
  assert "RANDBET has not injected any bit errors yet" in caplog.text
  assert "below loss_threshold=-1" in caplog.text and "CLIPPING" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    _trainer(threshold=1e9).fit(x, y, epochs=1, verbose=0)
  assert "has not injected" not in caplog.text


@pytest.mark.parametrize("share, injects", [(0.99, False), (1.01, True)])
def test_a_relative_threshold_is_a_share_of_the_first_steps_loss(share, injects):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, rate=0.05, relative_loss_threshold=share, seed=3,
                                     weight_decay=0.0)
  trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # the loss stays that of step 0
  x, y = _batch()
  first = float(tf.reduce_mean(keras.losses.categorical_crossentropy(
      tf.one_hot(y, 3), qmodel(x, training=True), from_logits=True)))
  trainer.train_on_batch(x, y)  # step 0 sets the reference loss; it is not below share * itself
  np.testing.assert_allclose(float(trainer.initial_loss.numpy()), first, rtol=1e-6)
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == (1.0 if injects else 0.0)
  assert trainer.describe_threshold().startswith(f"relative_loss_threshold={share:g}")


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss_threshold=1.0, relative_loss_threshold=0.5), "not both"),
    (dict(relative_loss_threshold=0.0), "relative_loss_threshold must be > 0"),
    (dict(relative_loss_threshold=float("nan")), "relative_loss_threshold")])
def test_bad_threshold_arguments_are_refused(kwargs, match):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  with pytest.raises(ValueError, match=match):
    training.BitErrorTrainer(qmodel, **kwargs)


def test_the_papers_threshold_with_another_loss_or_class_count_gets_a_warning(caplog):
  import logging  # pylint: disable=g-import-not-at-top
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")  # 3 classes
  with caplog.at_level(logging.WARNING):
    training.BitErrorTrainer(qmodel, rate=0.01).compile(optimizer="sgd")
  assert "made for the cross-entropy over 10 classes; with 3 classes" in caplog.text
  assert "relative_loss_threshold" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    training.BitErrorTrainer(qmodel, rate=0.01, weight_decay=1e-4).compile(
        optimizer=keras.optimizers.SGD(0.1, weight_decay=1e-3))
  assert "both apply" in caplog.text and "weight_decay=0" in caplog.text


# Recorded with the trainer of before issue 24, whose step branched on the method name: two
# steps of each method (seed 3, paper optimizer over 4 steps, weight decay 5e-4) end at weights
# with this sum and sum of squares, and this perturbed loss.
_RECORDED_STEPS = {
    "clean": (dict(rate=0.0), -4.259340919874376, 5.371184870618565, None),
    "randbet": (dict(rate=0.05), -4.232750681228936, 5.326696575286875, 1.1611769199371338),
    "average": (dict(method="randbet", rate=0.05, gradient_combination="average"),
                -4.214539215667173, 5.363677553806399, 1.1812876462936401),
    "pattbet": (dict(rate=0.0, pattern=chips.RandomChip(7), pattern_condition=0.05),
                -4.218040129228029, 5.331991079051608, 1.1251685619354248),
    "curricular": (dict(rate=0.05, curriculum_steps=2), -4.297042883816175, 5.337734886093779,
                   1.1378298997879028),
    "alternating": (dict(rate=0.05), -4.239048467949033, 5.282085017237257, 1.138272762298584),
}


@pytest.mark.parametrize("name", sorted(_RECORDED_STEPS))
def test_two_steps_of_every_method_end_at_the_weights_recorded_before_methods_became_classes(
    name):
  settings, weight_sum, square_sum, perturbed_loss = _RECORDED_STEPS[name]
  settings = dict(settings)
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  trainer = training.BitErrorTrainer(qmodel, method=settings.pop("method", name), seed=3,
                                     loss_threshold=1e9, **settings)
  trainer.compile(optimizer=training.paper_optimizer(4))
  x, y = _batch()
  for _ in range(2):
    logs = trainer.train_on_batch(x, y, return_dict=True)
  weights = np.concatenate([v.numpy().ravel() for v in qmodel.trainable_variables])
  weights = weights.astype(np.float64)
  assert float(np.sum(weights)) == pytest.approx(weight_sum, rel=1e-6)
  assert float(np.sum(weights * weights)) == pytest.approx(square_sum, rel=1e-6)
  assert logs.get("perturbed_loss") == (
      None if perturbed_loss is None else pytest.approx(perturbed_loss, rel=1e-6))
