"""ResNets (He et al., 2016) for 32x32 CIFAR input, App. G.7 / Tab. 14.

Both use post-activation residual blocks, convs without bias (each is followed by a norm), a
norm after the projection shortcut, global average pooling and a dense layer giving logits.

- ResNet-20: 3x3 stem with 16 channels, 3 stages x 3 basic blocks (16, 32, 64 channels),
  stride 2 entering stages 2 and 3. Shape-changing shortcuts are 1x1 conv + norm (option B;
  He et al.'s CIFAR net used zero padding, which needs a non-standard layer).
- ResNet-50: torchvision's bottleneck layout (3, 4, 6, 3 blocks, 64/128/256/512 x 4 channels,
  stride in the 3x3 conv) with the ImageNet stem (7x7 stride 2 conv, max pool) replaced by a
  3x3 stride 1 conv, as usual for 32x32 input.

Trainable parameters at width 1 for 10 classes: ResNet-20 272,474; ResNet-50 23,520,842.
"""
from tfbet.compat import keras
from tfbet.models import building

_RESNET20_STAGES = ((16, 3), (32, 3), (64, 3))
_RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
_BOTTLENECK_EXPANSION = 4


def _projection(x, factory, out_channels, stride, name):
  shortcut = factory.conv(out_channels, 1, strides=stride, use_bias=False,
                          name=f"{name}_shortcut_conv")(x)
  return factory.norm(out_channels, name=f"{name}_shortcut_norm")(shortcut)


def _basic_block(x, factory, in_channels, channels, stride, name):
  out = factory.conv(channels, 3, strides=stride, use_bias=False, name=f"{name}_conv1")(x)
  out = factory.norm(channels, name=f"{name}_norm1")(out)
  out = keras.layers.ReLU(name=f"{name}_relu1")(out)
  out = factory.conv(channels, 3, use_bias=False, name=f"{name}_conv2")(out)
  out = factory.norm(channels, name=f"{name}_norm2")(out)
  if stride == 1 and in_channels == channels:
    shortcut = x
  else:
    shortcut = _projection(x, factory, channels, stride, name)
  out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
  return keras.layers.ReLU(name=f"{name}_relu2")(out), channels


def _bottleneck_block(x, factory, in_channels, channels, stride, name):
  out_channels = channels * _BOTTLENECK_EXPANSION
  out = factory.conv(channels, 1, use_bias=False, name=f"{name}_conv1")(x)
  out = factory.norm(channels, name=f"{name}_norm1")(out)
  out = keras.layers.ReLU(name=f"{name}_relu1")(out)
  out = factory.conv(channels, 3, strides=stride, use_bias=False, name=f"{name}_conv2")(out)
  out = factory.norm(channels, name=f"{name}_norm2")(out)
  out = keras.layers.ReLU(name=f"{name}_relu2")(out)
  out = factory.conv(out_channels, 1, use_bias=False, name=f"{name}_conv3")(out)
  out = factory.norm(out_channels, name=f"{name}_norm3")(out)
  if stride == 1 and in_channels == out_channels:
    shortcut = x
  else:
    shortcut = _projection(x, factory, out_channels, stride, name)
  out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
  return keras.layers.ReLU(name=f"{name}_relu3")(out), out_channels


def _resnet(name, block_fn, stages, stem_channels, num_classes, input_shape, normalization,
            width, groups, channels_per_group, kernel_constraint, seed):
  num_classes = building.check_positive_int("num_classes", num_classes)
  width = building.check_width(width)
  input_shape = building.check_input_shape(input_shape, min_size=2**(len(stages) - 1))
  factory = building.LayerFactory(normalization, groups, channels_per_group,
                                  kernel_constraint, seed)

  inputs = keras.Input(shape=input_shape, name="image")
  channels = building.scale_channels(stem_channels, width)
  x = factory.conv(channels, 3, use_bias=False, name="stem_conv")(inputs)
  x = factory.norm(channels, name="stem_norm")(x)
  x = keras.layers.ReLU(name="stem_relu")(x)
  for stage, (stage_channels, num_blocks) in enumerate(stages, start=1):
    stage_channels = building.scale_channels(stage_channels, width)
    for block in range(1, num_blocks + 1):
      stride = 2 if stage > 1 and block == 1 else 1
      x, channels = block_fn(x, factory, channels, stage_channels, stride,
                             name=f"stage{stage}_block{block}")
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = factory.dense(num_classes, name="logits")(x)
  return keras.Model(inputs, logits, name=name)


def resnet20(num_classes=10,
             input_shape=(32, 32, 3),
             normalization="group",
             width=1.0,
             groups=32,
             channels_per_group=None,
             kernel_constraint=None,
             seed=None):
  """Builds the CIFAR ResNet-20; returns a functional model that outputs logits.

  Args:
    num_classes: size of the classifier output.
    input_shape: (height, width, channels).
    normalization: "group" or "batch".
    width: channel multiplier; each layer gets max(1, round(channels * width)) channels.
    groups: GN groups requested per layer, adapted to divide the layer's channels.
    channels_per_group: if given, GN layers ask for channels // channels_per_group groups.
    kernel_constraint: constraint (e.g. ``WeightClip``) on every kernel, bias and norm weight.
    seed: int seed of the He initialization; None for unseeded.
  """
  return _resnet("resnet20", _basic_block, _RESNET20_STAGES, 16, num_classes, input_shape,
                 normalization, width, groups, channels_per_group, kernel_constraint, seed)


def resnet50(num_classes=10,
             input_shape=(32, 32, 3),
             normalization="group",
             width=1.0,
             groups=32,
             channels_per_group=None,
             kernel_constraint=None,
             seed=None):
  """Builds ResNet-50 for 32x32 input; returns a functional model that outputs logits.

  Args: as ``resnet20``.
  """
  return _resnet("resnet50", _bottleneck_block, _RESNET50_STAGES, 64, num_classes, input_shape,
                 normalization, width, groups, channels_per_group, kernel_constraint, seed)
