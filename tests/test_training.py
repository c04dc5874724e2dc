"""BitErrorTrainer (Alg. 1 and variants) against hand computations."""
import numpy as np
import pytest
import tensorflow as tf

from tfbet import chips
from tfbet import memory
from tfbet import quantize_configs
from tfbet import training
from tfbet.compat import keras

from tests.test_quantize_configs import small_cnn


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
  trainer.train_on_batch(x, y)
  trainer.loss_threshold = -1.0  # a retrace would see this; the flag is sticky anyway
  assert bool(trainer.injecting.numpy())


def test_randbet_draws_a_fresh_chip_every_step_and_pattbet_the_same_pattern():
  trainer = _trainer()
  mem = trainer.layout

  def masks_at(iteration):
    trainer.optimizer.iterations.assign(iteration)
    trainer._load_errors()  # pylint: disable=protected-access
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
  x, y = _batch()
  logs = trainer.train_on_batch(x, y, return_dict=True)
  assert logs["injecting"] == 1.0 and np.isfinite(logs["perturbed_loss"])
  assert int(trainer.optimizer.iterations.numpy()) == 2  # a clean and a perturbed update


def test_paper_learning_rate_steps_at_two_three_and_four_fifths():
  schedule = training.paper_learning_rate(100)
  got = [float(schedule(step)) for step in (0, 40, 41, 60, 61, 80, 81, 99)]
  np.testing.assert_allclose(got, [0.05, 0.05, 0.005, 0.005, 5e-4, 5e-4, 5e-5, 5e-5],
                             rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(method="sgd"), "method"), (dict(rate=1.5), "rate"),
    (dict(method="curricular"), "curriculum_steps"), (dict(method="pattbet"), "pattern"),
    (dict(label_smoothing=1.0), "label_smoothing")])
def test_bad_trainer_arguments_raise_clear_errors(kwargs, match):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  with pytest.raises(ValueError, match=match):
    training.BitErrorTrainer(qmodel, **kwargs)
