"""Images per second of the CIFAR training pipeline: per-image vs batched augmentation.

Both run App. F's augmentation (crop 4 px, flip, AutoAugment CIFAR-10 policy, Cutout 16) and
whitening on the same random CIFAR-shaped uint8 images, one epoch each (dataset built and
iterated, as the trainer does every epoch; building and iterating timed apart), measured
round-robin in one process:
  per-image: augment.augment_image mapped over single examples before batching (the pipeline
             before batching, kept here as the reference);
  batched:   data.make_dataset, which applies augment.augment_batch to whole batches.
Target: ratio batched/per-image >= 5. Wall and CPU time are printed side by side: on a shared
machine the CPU time (all threads of this process) is the steadier of the two.

  python benchmarks/bench_pipeline.py [--images 8192] [--batch 128] [--repeats 3]
"""
import argparse

import common  # first: sets TF_USE_LEGACY_KERAS before TensorFlow loads
import numpy as np
import tensorflow as tf

from tfbet import augment, data


def per_image_dataset(images, labels, batch_size, seed, epoch, augmentation, whitening):
  """The per-example pipeline: stateless seed fold_in([seed, epoch], index) per example."""
  order = data.epoch_permutation(len(images), seed, epoch)
  dataset = tf.data.Dataset.from_tensor_slices((images[order], labels[order], order))
  epoch_seed = tf.constant([seed, epoch], tf.int64)
  fill = whitening[0]

  def augment_example(image, label, index):
    example_seed = tf.random.experimental.stateless_fold_in(epoch_seed, index)
    return augment.augment_image(image, example_seed, augmentation, fill), label

  dataset = dataset.map(augment_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  mean, std = whitening
  dataset = dataset.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def batched_dataset(images, labels, batch_size, seed, epoch, augmentation, whitening):
  return data.make_dataset(images, labels, batch_size=batch_size, training=True, seed=seed,
                           epoch=epoch, augment=augmentation, whitening=whitening)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--images", type=int, default=8192, help="images per epoch")
  parser.add_argument("--batch", type=int, default=128, help="batch size")
  parser.add_argument("--repeats", type=int, default=3, help="timed epochs per pipeline")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, args.images)
  whitening = data.compute_whitening(images)
  epochs = iter(range(10**6))  # a new epoch (new decisions) every build, as in training
  built = {}

  def build(name, make):
    def run():
      built[name] = make(images, labels, args.batch, 0, next(epochs), augment.CIFAR_AUGMENTATION,
                         whitening)
    return run

  def iterate(name):
    def run():
      for _ in built[name]:
        pass
    return run

  makers = {"per-image": per_image_dataset, "batched": batched_dataset}
  build_times, build_cpu = common.interleaved_medians(
      {name: build(name, make) for name, make in makers.items()}, repeats=args.repeats,
      warmup=1, cpu=True)
  times, cpu = common.interleaved_medians({name: iterate(name) for name in makers},
                                          repeats=args.repeats, warmup=1, cpu=True)
  used = args.images // args.batch * args.batch
  print(f"CIFAR augmentation (crop 4, flip, AutoAugment, Cutout 16) + whitening, {used} images "
        f"of 32x32x3, batch {args.batch}, median of {args.repeats} epochs; wall time (CPU time "
        "of all threads)")
  for name in makers:
    print(f"  {name:<10} {used / times[name]:7.0f} images/s   {1e3 * times[name] / used:6.3f} "
          f"({1e3 * cpu[name] / used:6.3f}) ms/image   + {build_times[name]:5.2f} "
          f"({build_cpu[name]:5.2f}) s per epoch to build the dataset")

  def ratio(seconds):
    return seconds["per-image"] / seconds["batched"]

  print(f"  ratio batched/per-image, images/s:       {ratio(times):5.2f} wall   "
        f"{ratio(cpu):5.2f} CPU   (target >= 5)")
  with_build = {name: times[name] + build_times[name] for name in makers}
  with_build_cpu = {name: cpu[name] + build_cpu[name] for name in makers}
  print(f"  the same with the build of every epoch:  {ratio(with_build):5.2f} wall   "
        f"{ratio(with_build_cpu):5.2f} CPU")

if __name__ == "__main__":
  main()
