"""Tests of tfbet.models: sizes of Tab. 6 / App. F / App. G.7, options, serialization, gin."""
import math

import gin
import numpy as np
import pytest

from tfbet import models
from tfbet.compat import keras
from tfbet.constraints import WeightClip
from tfbet.layers import BatchNormalization
from tfbet.layers import GroupNormalization

# Tab. 6, written out as (kernel size, output channels) per conv.
MNIST_CONVS = [(3, 32), (3, 64), (3, 64), (3, 64), (3, 64), (3, 64), (3, 128), (3, 256),
               (1, 1024), (1, 128), (3, 128)]
CIFAR_CONVS = [(3, 64), (3, 128), (3, 128), (3, 128), (3, 128), (3, 128), (3, 256), (3, 256),
               (3, 256), (3, 512), (1, 2048), (1, 256), (3, 256)]


def trainable_count(model):
  return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def scaled(channels, width):
  return max(1, math.floor(channels * width + 0.5))


def simplenet_count(convs, in_channels, num_classes, width=1.0):
  """Conv kernel + bias + 2 norm parameters per channel, then the dense classifier."""
  total = 0
  for kernel, channels in convs:
    channels = scaled(channels, width)
    total += kernel * kernel * in_channels * channels + 3 * channels
    in_channels = channels
  return total + in_channels * num_classes + num_classes


def conv_norm_count(kernel, cin, cout):
  """Bias-free conv followed by a norm with 2 parameters per channel."""
  return kernel * kernel * cin * cout + 2 * cout


def resnet_count(stages, blocks, stem, bottleneck, num_classes):
  total = conv_norm_count(3, 3, stem)
  cin = stem
  for stage, (channels, num_blocks) in enumerate(zip(stages, blocks)):
    for block in range(num_blocks):
      stride = 2 if stage > 0 and block == 0 else 1
      if bottleneck:
        cout = 4 * channels
        total += (conv_norm_count(1, cin, channels) + conv_norm_count(3, channels, channels)
                  + conv_norm_count(1, channels, cout))
      else:
        cout = channels
        total += conv_norm_count(3, cin, channels) + conv_norm_count(3, channels, channels)
      if stride != 1 or cin != cout:
        total += conv_norm_count(1, cin, cout)
      cin = cout
  return total + cin * num_classes + num_classes


def wide_resnet_count(depth, k, base, num_classes):
  """Pre-activation WRN with conv biases: norms count 2 per input channel of each block."""
  total = 3 * 3 * 3 * base + base
  cin = base
  for stage, multiplier in enumerate((1, 2, 4)):
    cout = base * k * multiplier
    for block in range((depth - 4) // 6):
      stride = 2 if stage > 0 and block == 0 else 1
      total += 2 * cin + (9 * cin * cout + cout) + 2 * cout + (9 * cout * cout + cout)
      if stride != 1 or cin != cout:
        total += cin * cout + cout
      cin = cout
  return total + 2 * cin + cin * num_classes + num_classes


@pytest.fixture(scope="module")
def cifar_simplenet():
  return models.simplenet(variant="cifar", seed=0)


def test_mnist_simplenet_has_exactly_the_weights_of_table_6():
  model = models.simplenet(variant="mnist")
  assert model.input_shape == (None, 28, 28, 1)
  assert trainable_count(model) == 1_082_826 == simplenet_count(MNIST_CONVS, 1, 10)


def test_cifar_simplenet_has_exactly_the_weights_of_table_6(cifar_simplenet):
  assert cifar_simplenet.input_shape == (None, 32, 32, 3)
  assert trainable_count(cifar_simplenet) == 5_498_378 == simplenet_count(CIFAR_CONVS, 3, 10)


def test_simplenet_feature_maps_follow_table_6():
  model = models.simplenet(variant="mnist")
  shapes = {layer.name: layer.output_shape[1:] for layer in model.layers}
  assert shapes["relu1"] == (28, 28, 32)
  assert shapes["pool2"] == (7, 7, 128)
  assert shapes["relu9"] == (7, 7, 1024)
  assert shapes["pool3"] == (3, 3, 128)
  assert shapes["global_pool"] == (128,)
  kernel_sizes = [model.get_layer(f"conv{i}").kernel_size[0] for i in range(1, 12)]
  assert kernel_sizes == [kernel for kernel, _ in MNIST_CONVS]
  assert all(model.get_layer(f"conv{i}").padding == "same" for i in range(1, 12))


def test_cifar_simplenet_pools_to_one_pixel_before_the_last_conv(cifar_simplenet):
  shapes = {layer.name: layer.output_shape[1:] for layer in cifar_simplenet.layers}
  assert shapes["relu11"] == (2, 2, 2048)
  assert shapes["pool5"] == (1, 1, 256)
  assert shapes["relu13"] == (1, 1, 256)
  kernel_sizes = [cifar_simplenet.get_layer(f"conv{i}").kernel_size[0] for i in range(1, 14)]
  assert kernel_sizes == [kernel for kernel, _ in CIFAR_CONVS]


def test_simplenet_uses_32_groups_in_every_group_norm_at_full_width(cifar_simplenet):
  norms = [layer for layer in cifar_simplenet.layers if isinstance(layer, GroupNormalization)]
  assert len(norms) == 13
  assert all(layer.groups == 32 for layer in norms)


def test_batch_norm_simplenet_has_the_same_trainable_count_plus_moving_statistics():
  model = models.simplenet(variant="mnist", normalization="batch")
  assert trainable_count(model) == 1_082_826
  channels = sum(c for _, c in MNIST_CONVS)
  non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
  assert non_trainable == 2 * channels
  assert sum(isinstance(layer, BatchNormalization) for layer in model.layers) == 11


def test_kernels_are_he_initialized(cifar_simplenet):
  kernel = cifar_simplenet.get_layer("conv11").kernel.numpy()  # 1x1, fan-in 512
  assert abs(kernel.std() / math.sqrt(2.0 / 512) - 1.0) < 0.01
  assert abs(kernel.mean()) < 1e-3
  np.testing.assert_array_equal(cifar_simplenet.get_layer("conv11").bias.numpy(), 0.0)


@pytest.mark.parametrize("width", [0.5, 0.3])
def test_width_multiplier_shrinks_simplenet_to_the_rounded_channel_counts(width):
  model = models.simplenet(variant="mnist", width=width)
  assert trainable_count(model) == simplenet_count(MNIST_CONVS, 1, 10, width)
  assert trainable_count(model) < 1_082_826 * width


def test_group_counts_adapt_to_divide_the_channels_of_narrow_models():
  model = models.simplenet(variant="mnist", width=0.3)
  for layer in model.layers:
    if isinstance(layer, GroupNormalization):
      channels = layer.input_shape[-1]
      assert channels % layer.groups == 0 and layer.groups <= 32
  assert model.get_layer("norm2").groups == 19  # 19 channels: prime, so 19 groups.
  assert model.get_layer("norm7").groups == 19  # 38 channels: largest divisor <= 32.


def test_channels_per_group_sets_the_group_size():
  model = models.simplenet(variant="mnist", width=0.25, channels_per_group=4)
  norms = [layer for layer in model.layers if isinstance(layer, GroupNormalization)]
  assert [layer.groups for layer in norms] == [2, 4, 4, 4, 4, 4, 8, 16, 64, 8, 8]


def test_resnet20_has_the_counted_weights():
  model = models.resnet20()
  expected = resnet_count((16, 32, 64), (3, 3, 3), 16, bottleneck=False, num_classes=10)
  assert trainable_count(model) == expected == 272_474
  assert model.output_shape == (None, 10)


def test_resnet50_for_cifar_has_about_23_5_million_weights():
  model = models.resnet50()
  expected = resnet_count((64, 128, 256, 512), (3, 4, 6, 3), 64, bottleneck=True,
                          num_classes=10)
  assert trainable_count(model) == expected == 23_520_842
  assert model.get_layer("global_pool").input_shape == (None, 4, 4, 2048)


def test_wide_resnet_28_10_with_12_base_channels_has_about_20_5_million_weights():
  model = models.wide_resnet(num_classes=100)
  assert trainable_count(model) == wide_resnet_count(28, 10, 12, 100) == 20_575_060
  assert model.get_layer("global_pool").input_shape == (None, 8, 8, 480)


def test_small_wide_resnet_with_dropout_is_deterministic_at_inference():
  model = models.wide_resnet(num_classes=5, depth=10, width_factor=2, base_channels=4,
                             dropout_rate=0.3, seed=1)
  assert trainable_count(model) == wide_resnet_count(10, 2, 4, 5)
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(model(x, training=False).numpy(),
                                model(x, training=False).numpy())
  assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_kernel_constraint_reaches_every_trainable_weight_and_no_statistic():
  clip = WeightClip(0.1)
  model = models.resnet20(width=0.25, normalization="batch", kernel_constraint=clip)
  assert model.trainable_weights
  assert all(w.constraint is clip for w in model.trainable_weights)
  assert all(w.constraint is None for w in model.non_trainable_weights)


def test_identical_seed_yields_identical_weights():
  first = models.simplenet(variant="mnist", width=0.125, seed=7).get_weights()
  second = models.simplenet(variant="mnist", width=0.125, seed=7).get_weights()
  other = models.simplenet(variant="mnist", width=0.125, seed=8).get_weights()
  assert all(np.array_equal(a, b) for a, b in zip(first, second))
  assert not np.array_equal(first[0], other[0])
  # Layers get distinct seeds: two equally shaped kernels differ.
  assert first[8].shape == first[12].shape and not np.array_equal(first[8], first[12])


@pytest.mark.parametrize("build", [
    lambda: models.simplenet(variant="mnist", width=0.125, kernel_constraint=WeightClip(0.1)),
    lambda: models.resnet20(width=0.25, normalization="batch"),
    lambda: models.wide_resnet(depth=10, width_factor=1, base_channels=4, dropout_rate=0.1),
], ids=["simplenet", "resnet20_batch", "wide_resnet"])
def test_json_and_clone_round_trips_rebuild_the_model_without_custom_objects(build):
  model = build()
  x = np.random.default_rng(1).normal(size=(2,) + model.input_shape[1:]).astype(np.float32)
  expected = model(x, training=False).numpy()
  for restored in (keras.models.model_from_json(model.to_json()),
                   keras.models.clone_model(model)):
    assert restored.get_config() == model.get_config()
    restored.set_weights(model.get_weights())
    np.testing.assert_allclose(restored(x, training=False).numpy(), expected, rtol=1e-5,
                               atol=1e-6)
  clip = keras.models.model_from_json(model.to_json()).trainable_weights[0].constraint
  assert clip == model.trainable_weights[0].constraint


def test_forward_pass_gives_finite_logits_per_class():
  model = models.simplenet(variant="cifar", width=0.0625, num_classes=7, seed=2)
  x = np.random.default_rng(2).normal(size=(3, 32, 32, 3)).astype(np.float32)
  logits = model(x, training=True).numpy()
  assert logits.shape == (3, 7) and np.all(np.isfinite(logits))


def test_get_model_builds_by_name_and_forwards_arguments():
  model = models.get_model("simplenet", variant="mnist", width=0.5)
  assert trainable_count(model) == simplenet_count(MNIST_CONVS, 1, 10, 0.5)
  assert set(models.MODELS) == {"simplenet", "wide_resnet", "resnet20", "resnet50"}


def test_get_model_is_configurable_from_gin():
  gin.clear_config()
  try:
    gin.parse_config("""
        get_model.name = 'resnet20'
        tfbet.models.get_model.width = 0.5
        get_model.num_classes = 3
    """)
    model = models.get_model()
  finally:
    gin.clear_config()
  assert model.name == "resnet20" and model.output_shape == (None, 3)
  stages = (8, 16, 32)
  assert trainable_count(model) == resnet_count(stages, (3, 3, 3), 8, False, 3)


def test_unknown_model_name_raises_value_error():
  with pytest.raises(ValueError, match="name must be one of"):
    models.get_model("vgg16")


@pytest.mark.parametrize("width", [0.0, -1.0, float("nan"), float("inf")])
def test_width_that_is_not_finite_and_positive_raises_value_error(width):
  with pytest.raises(ValueError, match="width"):
    models.simplenet(variant="mnist", width=width)


@pytest.mark.parametrize("build,error,match", [
    (lambda: models.resnet20(width="1"), TypeError, "width"),
    (lambda: models.resnet20(normalization="layer"), ValueError, "normalization"),
    (lambda: models.simplenet(variant="imagenet"), ValueError, "variant"),
    (lambda: models.simplenet(variant="mnist", input_shape=(4, 4, 1)), ValueError,
     "input_shape"),
    (lambda: models.simplenet(variant="mnist", input_shape=(28, 28)), ValueError,
     "input_shape"),
    (lambda: models.wide_resnet(depth=27), ValueError, "depth"),
    (lambda: models.wide_resnet(dropout_rate=1.0), ValueError, "dropout_rate"),
    (lambda: models.resnet20(num_classes=0), ValueError, "num_classes"),
    (lambda: models.resnet20(groups=0), ValueError, "groups"),
    (lambda: models.resnet20(seed=-1), ValueError, "seed"),
])
def test_bad_model_arguments_raise_errors_naming_the_argument(build, error, match):
  with pytest.raises(error, match=match):
    build()
