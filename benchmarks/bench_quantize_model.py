"""Time of ``tfbet.quantize_model`` vs the tfmot path it replaced, on a Keras Applications model.

before: tfmot's ``quantize_apply`` (clones the annotated model three more times, and traces
every quantizer whenever Keras infers a layer's output shape); after: tfbet's one clone with
``BitErrorQuantizeWrapper``. Both give the same weights (checked). One process, round-robin.

  python benchmarks/bench_quantize_model.py [--model MobileNetV2] [--size 32] [--repeats 3]
"""
import argparse

import common  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
import numpy as np

import tfbet
from tfbet import quantize_configs
from tfbet.compat import keras
from tfbet.compat import tfmot


class _NoTransform:
  def apply(self, model, layer_quantize_map):
    return model, layer_quantize_map


class _NoRegistry:
  def supports(self, layer):
    del layer
    return False

  def get_quantize_config(self, layer):
    del layer
    return None


class _Scheme(tfmot.quantization.keras.QuantizeScheme):
  def get_layout_transformer(self):
    return _NoTransform()

  def get_quantize_registry(self):
    return _NoRegistry()


def tfmot_quantize(model, scheme):
  """The path quantize_model took before: annotate, then tfmot's quantize_apply."""
  def annotate(layer):
    clone = layer.__class__.from_config(layer.get_config())
    attrs, _ = quantize_configs.quantizable_attributes(layer)
    if not attrs:
      return clone
    return tfmot.quantization.keras.quantize_annotate_layer(
        clone, quantize_configs.BitErrorQuantizeConfig(attrs, scheme))

  with quantize_configs.quantize_scope():
    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    return tfmot.quantization.keras.quantize_apply(annotated, scheme=_Scheme())


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--model", default="MobileNetV2", help="a keras.applications model")
  parser.add_argument("--size", type=int, default=32, help="input height and width")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs per path")
  args = parser.parse_args()

  keras.utils.set_random_seed(0)
  model = getattr(keras.applications, args.model)(weights=None,
                                                  input_shape=(args.size, args.size, 3))
  scheme = tfbet.get_scheme("rquant", 8)
  before, after = tfmot_quantize(model, scheme), tfbet.quantize_model(model, scheme)
  same = all(np.array_equal(a, b) for a, b in zip(before.get_weights(), after.get_weights()))
  times = common.interleaved_medians({
      "before": lambda: tfmot_quantize(model, scheme),
      "after": lambda: tfbet.quantize_model(model, scheme),
  }, repeats=args.repeats, warmup=0)
  print(f"{args.model} {args.size}x{args.size} ({len(model.layers)} layers, "
        f"{model.count_params():,} parameters), median of {args.repeats} runs; "
        f"same weights: {same}")
  print(f"  before (tfmot quantize_apply)   {times['before']:8.2f} s")
  print(f"  after  (tfbet.quantize_model)   {times['after']:8.2f} s")
  print(f"  ratio after/before              {times['after'] / times['before']:8.2f}")


if __name__ == "__main__":
  main()
