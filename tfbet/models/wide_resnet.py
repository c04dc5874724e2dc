"""Wide ResNet (Zagoruyko & Komodakis, 2016) for CIFAR100, App. F.

WRN-depth-k: a 3x3 stem conv with ``base_channels``, then three stages of (depth - 4) / 6
pre-activation blocks with base_channels * k * (1, 2, 4) channels (stride 2 entering stages 2
and 3), then norm + ReLU, global average pooling and a dense layer giving logits. A block is
norm-ReLU-conv3x3(stride)-norm-ReLU-[dropout]-conv3x3 added to the input, or to a 1x1 conv of
the pre-activated input when the shape changes. Convs have biases, as in the implementation the
paper adapted. The paper uses 12 base channels instead of 16 (W ~ 20.5 M instead of 36.5 M):
WRN-28-10 with 12 base channels and 100 classes has exactly 20,575,060 trainable parameters
(36,546,980 with 16 base channels).
"""
from tfbet.compat import keras
from tfbet.models import building


def _wide_block(x, factory, in_channels, out_channels, stride, dropout_rate, name):
  preactivated = factory.norm(in_channels, name=f"{name}_norm1")(x)
  preactivated = keras.layers.ReLU(name=f"{name}_relu1")(preactivated)
  out = factory.conv(out_channels, 3, strides=stride, name=f"{name}_conv1")(preactivated)
  out = factory.norm(out_channels, name=f"{name}_norm2")(out)
  out = keras.layers.ReLU(name=f"{name}_relu2")(out)
  if dropout_rate > 0.0:
    out = factory.dropout(dropout_rate, name=f"{name}_dropout")(out)
  out = factory.conv(out_channels, 3, name=f"{name}_conv2")(out)
  if stride == 1 and in_channels == out_channels:
    shortcut = x
  else:
    shortcut = factory.conv(out_channels, 1, strides=stride,
                            name=f"{name}_shortcut")(preactivated)
  return keras.layers.Add(name=f"{name}_add")([out, shortcut])


def wide_resnet(num_classes=100,
                input_shape=(32, 32, 3),
                depth=28,
                width_factor=10,
                base_channels=12,
                dropout_rate=0.0,
                normalization="group",
                width=1.0,
                groups=32,
                channels_per_group=None,
                kernel_constraint=None,
                seed=None):
  """Builds WRN-depth-width_factor; returns a functional model that outputs logits.

  Args:
    num_classes: size of the classifier output.
    input_shape: (height, width, channels).
    depth: total depth, 6 n + 4 for n >= 1 blocks per stage.
    width_factor: WRN's k.
    base_channels: channels of the stem (16 in the WRN paper, 12 in ours).
    dropout_rate: dropout between the two convs of a block, in [0, 1).
    normalization: "group" or "batch".
    width: extra channel multiplier on every layer (max(1, round(channels * width))).
    groups: GN groups requested per layer, adapted to divide the layer's channels.
    channels_per_group: if given, GN layers ask for channels // channels_per_group groups.
    kernel_constraint: constraint (e.g. ``WeightClip``) on every kernel, bias and norm weight.
    seed: int seed of the He initialization and dropout; None for unseeded.
  """
  num_classes = building.check_positive_int("num_classes", num_classes)
  depth = building.check_positive_int("depth", depth)
  if depth < 10 or (depth - 4) % 6:
    raise ValueError(f"depth must be 6 n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}.")
  width_factor = building.check_positive_int("width_factor", width_factor)
  base_channels = building.check_positive_int("base_channels", base_channels)
  dropout_rate = building.check_rate("dropout_rate", dropout_rate)
  width = building.check_width(width)
  input_shape = building.check_input_shape(input_shape, min_size=4)
  factory = building.LayerFactory(normalization, groups, channels_per_group,
                                  kernel_constraint, seed)
  blocks_per_stage = (depth - 4) // 6

  inputs = keras.Input(shape=input_shape, name="image")
  channels = building.scale_channels(base_channels, width)
  x = factory.conv(channels, 3, name="stem_conv")(inputs)
  for stage, multiplier in enumerate((1, 2, 4), start=1):
    out_channels = building.scale_channels(base_channels * width_factor * multiplier, width)
    for block in range(1, blocks_per_stage + 1):
      stride = 2 if stage > 1 and block == 1 else 1
      x = _wide_block(x, factory, channels, out_channels, stride, dropout_rate,
                      name=f"stage{stage}_block{block}")
      channels = out_channels
  x = factory.norm(channels, name="final_norm")(x)
  x = keras.layers.ReLU(name="final_relu")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = factory.dense(num_classes, name="logits")(x)
  return keras.Model(inputs, logits, name=f"wide_resnet_{depth}_{width_factor}")
