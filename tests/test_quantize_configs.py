"""quantize_model, BitErrorQuantizer and its masks on small functional models."""
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import cnn_inputs
from tests.helpers import small_cnn
from tfbet import chips
from tfbet import constraints
from tfbet import memory
from tfbet import quantization
from tfbet import quantize_configs
from tfbet import quantizers
from tfbet.compat import keras


def test_quantize_model_quantizes_every_trainable_parameter_separately():
  model = small_cnn()
  qmodel = quantize_configs.quantize_model(model, "rquant")
  mem = memory.layout(qmodel)
  names = [slot.name.split("/")[-1].split(":")[0] for slot in mem.slots]
  assert names == ["kernel", "bias", "gamma", "beta", "depthwise_kernel", "bias", "kernel",
                   "bias"]
  assert mem.num_weights == model.count_params() == sum(
      int(np.prod(w.shape)) for w in model.trainable_weights)
  assert [s.offset for s in mem.slots] == list(np.cumsum([0] + [s.size for s in mem.slots])[:-1])


def test_clean_quantized_model_equals_numpy_fake_quantization_of_its_weights():
  model = small_cnn()
  qmodel = quantize_configs.quantize_model(model, "rquant")
  x = cnn_inputs()
  scheme = quantization.get_scheme("rquant")
  reference = keras.models.clone_model(model)
  reference.set_weights([quantization.fake_quantize(w, scheme).numpy()
                         for w in model.get_weights()])
  np.testing.assert_allclose(qmodel(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-6)


def test_zero_masks_give_exactly_the_clean_quantized_weights():
  qmodel = quantize_configs.quantize_model(small_cnn(), "normal")
  mem = memory.layout(qmodel)
  for slot in mem.slots:
    codes, q_min, q_max = slot.quantizer.clean_codes(slot.variable, slot.qvars)
    expected = quantization.dequantize(codes, q_min, q_max, mem.scheme).numpy()
    got = slot.quantizer(slot.variable, False, slot.qvars).numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("preset", ["normal", "rquant"])
def test_flipping_bit_m_minus_1_everywhere_moves_each_weight_as_the_equations_say(preset):
  precision = 4
  scheme = quantization.get_scheme(preset, precision)
  qmodel = quantize_configs.quantize_model(small_cnn(), scheme)
  mem = memory.layout(qmodel)
  flip = np.full([mem.num_weights], 1 << (precision - 1), np.uint8)
  memory.load_masks(mem, flip=flip)
  for slot in mem.slots:
    w = slot.variable.numpy()
    q_min, q_max = [float(v) for v in quantization.tensor_range(w, scheme)]
    codes = quantization.quantize(w, q_min, q_max, scheme).numpy()
    clean = quantization.dequantize(codes, q_min, q_max, scheme).numpy()
    perturbed = slot.quantizer(slot.variable, False, slot.qvars).numpy()
    levels = 2 ** (precision - 1) - 1
    if scheme.unsigned:
      # Unsigned: the MSB adds or removes 2^(m-1) levels of Delta = (q_max - q_min) / 2L.
      step = (q_max - q_min) / (2 * levels)
      sign = np.where(codes & (1 << (precision - 1)), -1.0, 1.0)
    else:
      # Signed: the MSB moves the integer by 2^(m-1) (sign flip in two's complement).
      step = q_max / levels
      sign = np.where(codes & (1 << (precision - 1)), 1.0, -1.0)
    np.testing.assert_allclose(perturbed - clean, sign * 2 ** (precision - 1) * step,
                               rtol=1e-4, atol=1e-6)
  memory.clear_masks(mem)
  x = cnn_inputs()
  assert np.all(np.isfinite(qmodel(x).numpy()))


def test_quantizer_gradient_is_straight_through():
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  slot = memory.layout(qmodel).slots[0]
  with tf.GradientTape() as tape:
    y = tf.reduce_sum(slot.quantizer(slot.variable, True, slot.qvars))
  np.testing.assert_array_equal(tape.gradient(y, slot.variable).numpy(),
                                np.ones(slot.shape, np.float32))


def test_quantizer_and_config_serialize_round_trip():
  scheme = quantization.get_scheme("unsigned", 5)
  quantizer = quantizers.BitErrorQuantizer(scheme)
  restored = keras.utils.deserialize_keras_object(
      keras.utils.serialize_keras_object(quantizer),
      custom_objects=quantize_configs.custom_objects())
  assert restored == quantizer and restored.scheme == scheme
  config = quantize_configs.BitErrorQuantizeConfig(("kernel", "bias"), scheme)
  restored = quantize_configs.BitErrorQuantizeConfig.from_config(config.get_config())
  assert restored == config


def test_saved_and_loaded_quantized_model_gives_identical_outputs(tmp_path):
  qmodel = quantize_configs.quantize_model(small_cnn(normalization="batch"), "rquant")
  x = cnn_inputs()
  path = str(tmp_path / "model.h5")
  with quantize_configs.quantize_scope():
    qmodel.save(path)
    loaded = keras.models.load_model(path, compile=False)
  np.testing.assert_array_equal(loaded(x).numpy(), qmodel(x).numpy())


def test_clipping_holds_after_training_steps():
  clip = constraints.WeightClip(0.05)
  qmodel = quantize_configs.quantize_model(small_cnn(kernel_constraint=clip), "rquant")
  qmodel.compile(optimizer=keras.optimizers.SGD(1.0),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x, y = cnn_inputs(n=16), np.arange(16) % 3
  qmodel.fit(x, y, epochs=2, batch_size=8, verbose=0)
  mem = memory.layout(qmodel)
  clipped = [s for s in mem.slots if s.variable.constraint is not None]
  assert len(clipped) == 6  # conv, norm and dense kernels/biases; depthwise is unconstrained
  for slot in clipped:
    assert np.abs(slot.variable.numpy()).max() <= 0.05 + 1e-7


def test_subclassed_models_are_refused_with_an_explanation():
  class Net(keras.Model):
    def __init__(self):
      super().__init__()
      self.dense = keras.layers.Dense(2)

    def call(self, x):
      return self.dense(x)

  net = Net()
  net(np.zeros((1, 3), np.float32))
  with pytest.raises(ValueError, match="subclassed"):
    quantize_configs.quantize_model(net)


def test_unknown_scheme_is_refused():
  with pytest.raises(ValueError, match="unknown quantization preset"):
    quantize_configs.quantize_model(small_cnn(), "best")


def test_sequential_models_are_quantized_too():
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"),
                            keras.layers.Dense(2)])
  qmodel = quantize_configs.quantize_model(model, "rquant")
  assert memory.layout(qmodel).num_weights == model.count_params() == 34
  x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
  scheme = quantization.get_scheme("rquant")
  reference = keras.models.clone_model(model)
  reference.set_weights([quantization.fake_quantize(w, scheme).numpy()
                         for w in model.get_weights()])
  np.testing.assert_allclose(qmodel(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-6)


def _lstm_attention_model():
  keras.utils.set_random_seed(2)
  inputs = keras.Input((5, 3))
  x = keras.layers.LSTM(4, return_sequences=True)(inputs)
  x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)
  return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))


def _memory_state(qmodel):
  mem = memory.layout(qmodel)
  codes, ranges = memory.memory_contents(mem)
  masks = [np.concatenate([s.qvars[m].numpy().ravel() for s in mem.slots])
           for m in quantizers.MASK_NAMES]
  return codes, ranges, masks


@pytest.mark.parametrize("suffix", [".h5", ".keras", "_savedmodel"])
@pytest.mark.parametrize("build", [lambda: small_cnn(normalization="batch"),
                                   _lstm_attention_model], ids=["cnn", "lstm_attention"])
def test_saved_and_loaded_quantized_model_is_bit_identical(tmp_path, suffix, build):
  model = build()
  qmodel = quantize_configs.quantize_model(model, "rquant")
  memory.load_chip(qmodel, chips.RandomChip(7), 0.05)  # masks are part of the state
  x = np.random.default_rng(0).normal(size=(3,) + model.input_shape[1:]).astype(np.float32)
  path = str(tmp_path / f"q{suffix}")
  qmodel.save(path)
  with quantize_configs.quantize_scope():
    loaded = keras.models.load_model(path, compile=False)
  assert isinstance(loaded, quantize_configs.QuantizedModel)
  np.testing.assert_array_equal(loaded(x).numpy(), qmodel(x).numpy())
  for got, expected in zip(_memory_state(loaded), _memory_state(qmodel)):
    np.testing.assert_array_equal(got, expected)


def test_savedmodel_with_traced_functions_is_refused_at_save_time_naming_what_works(tmp_path):
  qmodel = quantize_configs.quantize_model(small_cnn(), "rquant")
  with pytest.raises(ValueError, match=r"save_traces=False.*\.h5 or \.keras"):
    qmodel.save(str(tmp_path / "sm"), save_traces=True)
  assert not (tmp_path / "sm").exists()


def test_summary_separates_the_models_parameters_from_tfbets_bookkeeping():
  model = small_cnn(normalization="batch")
  qmodel = quantize_configs.quantize_model(model, quantization.get_scheme("rquant"))
  lines = []
  qmodel.summary(print_fn=lines.append)
  keras_total = sum(int(np.prod(w.shape)) for w in qmodel.weights)
  # The float model's own count is the reference (BatchNormalization statistics included).
  assert lines[-1] == (
      f"tfbet: the model has {model.count_params():,} parameters "
      f"({sum(int(np.prod(w.shape)) for w in model.trainable_weights):,} trainable); the other "
      f"{keras_total - model.count_params():,} of Keras' count are tfbet's bookkeeping (bit "
      "error masks, codes, quantization ranges)")
  assert keras_total > model.count_params()
  assert memory.coverage(qmodel).parameters == model.count_params()
