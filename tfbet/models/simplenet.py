"""SimpleNet (HasanPour et al., 2016) as used in the paper, Tab. 6.

Every conv is Conv(bias) + normalization + ReLU with 'same' padding; max pooling 2x2 / stride 2
('valid', so MNIST's 7x7 map pools to 3x3); global average pooling; one dense layer giving
logits. All convs are 3x3 except the two 1x1 convs after the widest layer (MNIST 1024 -> 128,
CIFAR 2048 -> 256). The MNIST variant halves all channel widths and drops one conv/pool stage.

Trainable parameters at width 1 with 10 classes (GN: scale and offset, 2 per channel, whatever
the number of groups): MNIST (28x28x1) W = 1,082,826 and CIFAR10 (32x32x3) W = 5,498,378,
exactly Tab. 6. The group layout does not change these counts; by default each GN layer asks
for 32 groups (Wu & He's default), adapted to the largest divisor of its channel count, which is
32 groups for every layer at width 1 (1 channel per group only in MNIST's first 32-channel layer).
"""
from tfbet.compat import keras
from tfbet.models import building

# (channels, kernel size) per conv; "pool" is a 2x2 max pooling.
MNIST_LAYOUT = (
    (32, 3), (64, 3), (64, 3), (64, 3), "pool",
    (64, 3), (64, 3), (128, 3), "pool",
    (256, 3), (1024, 1), (128, 1), "pool",
    (128, 3),
)
CIFAR_LAYOUT = (
    (64, 3), (128, 3), (128, 3), (128, 3), "pool",
    (128, 3), (128, 3), (256, 3), "pool",
    (256, 3), (256, 3), "pool",
    (512, 3), "pool",
    (2048, 1), (256, 1), "pool",
    (256, 3),
)
# A SimpleNet-like stack sized for 2 CPU cores (about 134k weights on MNIST, docs/design.md §5): narrow
# early layers keep it fast, and 128 channels before the classifier keep enough redundancy for
# aggressive clipping (a width-scaled SimpleNet ends in too few channels and loses accuracy
# when clipped at w_max = 0.05).
MNIST_CPU_LAYOUT = (
    (8, 3), "pool", (32, 3), "pool", (64, 3), (64, 3), "pool", (128, 3),
)
LAYOUTS = {"mnist": MNIST_LAYOUT, "cifar": CIFAR_LAYOUT, "mnist_cpu": MNIST_CPU_LAYOUT}
DEFAULT_INPUT_SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3), "mnist_cpu": (28, 28, 1)}


def simplenet(num_classes=10,
              input_shape=None,
              variant="cifar",
              normalization="group",
              width=1.0,
              groups=32,
              channels_per_group=None,
              kernel_constraint=None,
              seed=None):
  """Builds SimpleNet; returns a functional model that outputs logits.

  Args:
    num_classes: size of the classifier output.
    input_shape: (height, width, channels); defaults to 28x28x1 (mnist) or 32x32x3 (cifar).
    variant: "mnist" or "cifar" layout of Tab. 6, or "mnist_cpu" (a small CPU-sized stack).
    normalization: "group" (the paper's choice) or "batch" (Tab. 10).
    width: channel multiplier; each layer gets max(1, round(channels * width)) channels.
    groups: GN groups requested per layer, adapted to divide the layer's channels.
    channels_per_group: if given, GN layers ask for channels // channels_per_group groups.
    kernel_constraint: constraint (e.g. ``WeightClip``) on every kernel, bias and norm weight.
    seed: int seed of the He initialization; None for unseeded.
  """
  if variant not in LAYOUTS:
    raise ValueError(f"variant must be one of {tuple(LAYOUTS)}, got {variant!r}.")
  layout = LAYOUTS[variant]
  num_classes = building.check_positive_int("num_classes", num_classes)
  width = building.check_width(width)
  num_pools = sum(1 for entry in layout if entry == "pool")
  input_shape = building.check_input_shape(
      DEFAULT_INPUT_SHAPES[variant] if input_shape is None else input_shape,
      min_size=2**num_pools)
  factory = building.LayerFactory(normalization, groups, channels_per_group,
                                  kernel_constraint, seed)

  inputs = keras.Input(shape=input_shape, name="image")
  x = inputs
  conv_index = pool_index = 0
  for entry in layout:
    if entry == "pool":
      pool_index += 1
      x = keras.layers.MaxPooling2D(2, strides=2, padding="valid", name=f"pool{pool_index}")(x)
      continue
    conv_index += 1
    channels, kernel_size = entry
    channels = building.scale_channels(channels, width)
    x = factory.conv(channels, kernel_size, use_bias=True, name=f"conv{conv_index}")(x)
    x = factory.norm(channels, name=f"norm{conv_index}")(x)
    x = keras.layers.ReLU(name=f"relu{conv_index}")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  logits = factory.dense(num_classes, name="logits")(x)
  return keras.Model(inputs, logits, name=f"simplenet_{variant}")
