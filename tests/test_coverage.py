"""Coverage: every trainable variable a layer reads is in faulty memory, or quantize_model refuses.

For each layer type the memory layout holds exactly the model's trainable parameter count, and
flipping the bits of any one tensor's memory changes the output (so the layer really reads the
quantized tensor, not its float variable).
"""
import numpy as np
import pytest
import tensorflow as tf

from tfbet import chips
from tfbet import flat_models
from tfbet import memory
from tfbet import quantize_configs
from tfbet.compat import keras

L = keras.layers


def _stack(input_shape, *layer_list):
  inputs = keras.Input(input_shape)
  x = inputs
  for layer in layer_list:
    x = layer(x)
  return keras.Model(inputs, x)


def _attention():
  inputs = keras.Input((5, 8))
  x = L.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
  return keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))


def _nested_sequential():
  base = keras.Sequential([keras.Input((6,)), L.Dense(5, name="d1"), L.Dense(4, name="d2")],
                          name="base")
  inputs = keras.Input((6,))
  return keras.Model(inputs, L.Dense(2, name="head")(base(inputs)))


def _nested_functional_with_clashing_names_used_twice():
  base_in = keras.Input((6,))
  base = keras.Model(base_in, L.Dense(6, name="dense")(L.Dense(5, name="first")(base_in)),
                     name="base")
  inputs = keras.Input((6,))
  x = base(base(inputs))  # the same nested model twice: its layers are shared
  return keras.Sequential([keras.Model(inputs, x), L.Dense(2, name="dense")])


MODELS = {
    "dense": lambda: _stack((6,), L.Dense(4), L.Dense(2)),
    "conv1d": lambda: _stack((7, 2), L.Conv1D(3, 2), L.Flatten(), L.Dense(2)),
    "conv2d": lambda: _stack((5, 5, 2), L.Conv2D(3, 2), L.Flatten(), L.Dense(2)),
    "conv3d": lambda: _stack((4, 4, 4, 2), L.Conv3D(2, 2), L.Flatten(), L.Dense(2)),
    "conv2d_transpose": lambda: _stack((3, 3, 2), L.Conv2DTranspose(2, 2), L.Flatten(),
                                       L.Dense(2)),
    "depthwise_conv2d": lambda: _stack((5, 5, 2), L.DepthwiseConv2D(2), L.Flatten(), L.Dense(2)),
    "separable_conv2d": lambda: _stack((5, 5, 2), L.SeparableConv2D(3, 2), L.Flatten(),
                                       L.Dense(2)),
    "embedding": lambda: _stack((5,), L.Embedding(10, 4), L.Flatten(), L.Dense(2)),
    "simple_rnn": lambda: _stack((5, 3), L.SimpleRNN(4), L.Dense(2)),
    "gru": lambda: _stack((5, 3), L.GRU(4), L.Dense(2)),
    "lstm": lambda: _stack((5, 3), L.LSTM(4), L.Dense(2)),
    "bidirectional_lstm": lambda: _stack((5, 3), L.Bidirectional(L.LSTM(3)), L.Dense(2)),
    "multi_head_attention": _attention,
    "layer_normalization": lambda: _stack((6,), L.Dense(4), L.LayerNormalization(), L.Dense(2)),
    "batch_normalization": lambda: _stack((6,), L.Dense(4), L.BatchNormalization(), L.Dense(2)),
    "group_normalization": lambda: _stack((3, 3, 4), L.GroupNormalization(2), L.Flatten(),
                                          L.Dense(2)),
    "nested_sequential": _nested_sequential,
    "nested_functional": _nested_functional_with_clashing_names_used_twice,
}


def _trainable_count(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _randomized(build, seed=0):
  """The model with random trainable weights (no constant tensor, e.g. a zero bias)."""
  keras.utils.set_random_seed(seed)
  model = build()
  rng = np.random.default_rng(seed)
  for weight in model.trainable_weights:
    weight.assign(rng.normal(0.0, 0.5, size=weight.shape).astype(np.float32))
  return model


def _fake_quantized(model):
  """Independent reference: a copy whose trainable weights are fake-quantized in numpy (Eq. 3, 4)."""
  reference = keras.models.clone_model(model)
  reference.set_weights(model.get_weights())
  for weight in reference.trainable_weights:
    w = weight.numpy().astype(np.float64)
    q_min, q_max = w.min(), w.max()
    codes = np.round((w - q_min) / (q_max - q_min) * 254.0)  # 8-bit RQUANT: 2L + 1 levels
    weight.assign((codes / 254.0 * (q_max - q_min) + q_min).astype(np.float32))
  return reference


def _inputs(model, seed=1):
  shape = (3,) + tuple(model.input_shape[1:])
  return np.random.default_rng(seed).integers(0, 10, size=shape).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_memory_holds_every_trainable_parameter_and_each_tensor_changes_the_output(name):
  model = _randomized(MODELS[name])
  qmodel = quantize_configs.quantize_model(model, "rquant")
  mem = memory.layout(qmodel)
  assert mem.num_weights == _trainable_count(model)
  assert memory.coverage(mem).faulty == memory.coverage(mem).trainable == mem.num_weights
  x = _inputs(model)
  clean = qmodel(x, training=False).numpy()
  np.testing.assert_allclose(clean, _fake_quantized(model)(x, training=False).numpy(),
                             rtol=1e-4, atol=1e-4)
  for slot in mem.slots:  # all bits of one tensor flipped, the others clean
    flip = np.zeros([mem.num_weights], np.uint8)
    flip[slot.offset:slot.offset + slot.size] = mem.scheme.code_mask
    memory.load_masks(mem, flip=flip)
    assert not np.array_equal(qmodel(x, training=False).numpy(), clean), slot.name
  memory.load_chip(mem, chips.RandomChip(3), 0.05)
  assert not np.array_equal(qmodel(x, training=False).numpy(), clean)


def test_nested_models_are_inlined_keeping_outer_names_and_sharing_reused_layers():
  model = _randomized(_nested_functional_with_clashing_names_used_twice)
  flat = flat_models.flatten_model(model)
  assert not any(isinstance(layer, keras.Model) for layer in flat.layers)
  names = [layer.name for layer in flat.layers]
  # The outer "dense" keeps its name; the nested one is prefixed with its models' names.
  assert "dense" in names and len(names) == len(set(names))
  assert [n for n in names if n.endswith("_base_dense")]
  x = _inputs(model)
  np.testing.assert_allclose(flat(x).numpy(), model(x).numpy(), rtol=1e-6)
  # base used twice: its two Dense layers once each, with 6*5+5 + 5*6+6 parameters.
  assert _trainable_count(flat) == _trainable_count(model) == 35 + 36 + 6 * 2 + 2


class _HiddenKernelDense(L.Layer):
  """Keeps its kernel only in a list: no attribute holds it, so it cannot be quantized."""

  def build(self, input_shape):
    self.kernels = [self.add_weight("hidden", shape=(input_shape[-1], 2))]

  def call(self, inputs):
    return tf.matmul(inputs, self.kernels[0])


def test_a_trainable_variable_no_attribute_holds_is_refused_naming_it():
  inputs = keras.Input((3,))
  model = keras.Model(inputs, _HiddenKernelDense(name="custom")(L.Dense(3)(inputs)))
  with pytest.raises(ValueError, match=r"custom: .*hidden.* \(3, 2\).*exclude"):
    quantize_configs.quantize_model(model)


def test_excluded_layers_stay_float_and_the_coverage_says_so():
  inputs = keras.Input((3,))
  model = keras.Model(inputs, _HiddenKernelDense(name="custom")(L.Dense(3, name="d")(inputs)))
  for exclude in (["custom"], lambda layer: isinstance(layer, _HiddenKernelDense)):
    qmodel = quantize_configs.quantize_model(model, exclude=exclude)
    cov = memory.coverage(qmodel)
    assert (cov.faulty, cov.trainable, cov.parameters) == (12, 18, 18)
    assert cov.share == pytest.approx(12 / 18)
    assert "12 of 18 parameters (66.67 %)" in cov.describe()


def test_excluding_an_unknown_layer_name_is_refused():
  with pytest.raises(ValueError, match="does not have: \\['nope'\\]"):
    quantize_configs.quantize_model(MODELS["dense"](), exclude=["nope"])


def test_batch_normalization_statistics_count_as_parameters_outside_faulty_memory():
  qmodel = quantize_configs.quantize_model(MODELS["batch_normalization"]())
  cov = memory.coverage(qmodel)
  # Dense 6*4+4, BN gamma+beta 8 (moving mean and variance 8 more), Dense 4*2+2.
  assert (cov.faulty, cov.trainable, cov.parameters) == (46, 46, 54)


@pytest.mark.parametrize("application", [
    lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.35,
        classifier_activation=None),
    lambda: keras.applications.MobileNetV3Small(
        weights=None, input_shape=(32, 32, 3), classes=10, alpha=0.75, minimalistic=True,
        classifier_activation=None, include_preprocessing=False),
], ids=["MobileNetV2", "MobileNetV3Small"])
def test_keras_applications_are_covered_completely(application):
  keras.utils.set_random_seed(0)
  model = application()
  qmodel = quantize_configs.quantize_model(model, "rquant")
  mem = memory.layout(qmodel)
  assert mem.num_weights == _trainable_count(model)
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  clean = qmodel(x, training=False).numpy()
  memory.load_chip(mem, chips.RandomChip(1), 0.01)
  assert not np.array_equal(qmodel(x, training=False).numpy(), clean)


def _frozen_backbone_model():
  """A frozen backbone (conv, batch norm, dense) and a new trainable head: fine-tuning."""
  keras.utils.set_random_seed(4)
  inputs = keras.Input((6, 6, 1))
  x = L.Conv2D(3, 3, name="backbone_conv")(inputs)
  x = L.BatchNormalization(name="backbone_norm")(x)
  x = L.Dense(4, name="backbone_dense")(L.Flatten()(x))
  model = keras.Model(inputs, L.Dense(2, name="head")(x))
  for name in ("backbone_conv", "backbone_norm", "backbone_dense"):
    model.get_layer(name).trainable = False
  return model


def test_frozen_layers_are_stored_in_faulty_memory_and_stay_frozen():
  model = _frozen_backbone_model()
  assert len(model.trainable_weights) == 2  # only the head trains
  qmodel = quantize_configs.quantize_model(model, "rquant")
  mem = memory.layout(qmodel)
  # Every parameter but the batch norm moving statistics (reliable state, the documented
  # exception), frozen or not.
  state = sum(int(np.prod(v.shape)) for v in model.weights if not v.trainable)
  assert state == 6
  assert mem.num_weights == sum(int(np.prod(v.shape)) for v in model.weights) - state
  assert [s.name for s in mem.slots][:2] == ["quant_backbone_conv/kernel:0",
                                             "quant_backbone_conv/bias:0"]
  # Freezing is kept: only the head trains, the frozen weights do not move.
  assert {v.name for v in qmodel.trainable_weights} == {"quant_head/kernel:0", "quant_head/bias:0"}
  frozen = qmodel.get_layer("quant_backbone_dense").get_weights()[0].copy()
  qmodel.compile(optimizer=keras.optimizers.SGD(0.5),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype(np.float32)
  qmodel.fit(x, np.arange(8) % 2, epochs=2, verbose=0)
  np.testing.assert_array_equal(qmodel.get_layer("quant_backbone_dense").get_weights()[0], frozen)
  # Bit errors in the frozen backbone reach the output.
  clean = qmodel(x, training=False).numpy()
  slot = mem.slots[0]
  flip = np.zeros([mem.num_weights], np.uint8)
  flip[slot.offset:slot.offset + slot.size] = mem.scheme.code_mask
  memory.load_masks(mem, flip=flip)
  assert not np.array_equal(qmodel(x, training=False).numpy(), clean)


class _ClosureDense(L.Layer):
  """Reads its kernel through a Python closure made in build: bit errors never reach it."""

  def build(self, input_shape):
    self.kernel = self.add_weight("kernel", (input_shape[-1], 2))
    kernel = self.kernel
    self._matmul = lambda x: tf.matmul(x, kernel)

  def call(self, inputs):
    return self._matmul(inputs)


class _IndexedDense(L.Layer):
  def build(self, input_shape):
    self.kernel = self.add_weight("kernel", (input_shape[-1], 2))

  def call(self, inputs):
    return tf.matmul(inputs, self.weights[0])


class _ReadValueDense(L.Layer):
  def build(self, input_shape):
    self.kernel = self.add_weight("kernel", (input_shape[-1], 2))

  def call(self, inputs):
    return tf.matmul(inputs, self.kernel.read_value())


@pytest.mark.parametrize("layer_class, problem", [
    (_ClosureDense, r"reads weights around faulty memory \(layer 'odd' reads .*kernel"),
    (_IndexedDense, r"layer 'odd' fails when it reads its quantized weights \(IndexError"),
    (_ReadValueDense, r"layer 'odd' fails .*\(AttributeError.*read_value"),
])
def test_layers_reading_weights_around_their_attributes_are_refused_naming_them(
    layer_class, problem):
  inputs = keras.Input((3,))
  model = keras.Model(inputs, layer_class(name="odd")(L.Dense(3)(inputs)))
  with pytest.raises(ValueError, match=problem + r".*through the attribute.*exclude"):
    quantize_configs.quantize_model(model)
  # Left out explicitly, the rest is quantized and the coverage says what is missing.
  qmodel = quantize_configs.quantize_model(model, exclude=["odd"])
  assert memory.coverage(qmodel).faulty == 3 * 3 + 3
