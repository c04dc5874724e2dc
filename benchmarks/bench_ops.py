"""Times making and applying one random bit error mask for a CIFAR SimpleNet (Tab. 6, App. F).

Compares, for W = 5,498,378 weights, m = 8 bits and p = 1 %, the time to draw a flip mask and
apply it to the uint8 codes with
  (a) the compiled op (tfbet.ops.random_flip_mask + apply_bit_errors),
  (b) numpy: one uniform per bit from np.random.Generator(Philox), compare, np.packbits, XOR,
  (c) pure TensorFlow: tf.random.stateless_uniform per bit + bitwise ops in a tf.function whose
      seed is a runtime tensor (a constant seed lets grappler fold the mask into a constant),
  (d) the op on a GPU, where one is visible and the library was built with TFBET_BUILD_CUDA=1.
Prints the median of several runs of each and the ratios, and how far the op is from the
memory-bandwidth floor: the time numpy takes to copy the W codes once (read W bytes, write W
bytes), which any op that reads the codes and writes perturbed ones must at least spend. Usage:

  python benchmarks/bench_ops.py [--weights N] [--rate P] [--repeats R] [--threads T]
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

SIMPLENET_CIFAR_WEIGHTS = 5_498_378


# CPU seconds (all threads of this process) of every median_seconds call, by call order: on a
# shared machine the wall time depends on the load, the CPU time much less.
CPU_SECONDS = []


def median_seconds(function, repeats):
  """Median wall time of function(run_index) over `repeats` runs, after one warm-up run."""
  function(-1)
  times, cpu = [], []
  for run in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    function(run)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
  CPU_SECONDS.append(statistics.median(cpu))
  return statistics.median(times)


def bench_op(values, rate, precision, repeats):
  from tfbet import ops  # pylint: disable=g-import-not-at-top

  def run(index):
    seed = tf.constant(1000 + index, tf.int64)
    flip = ops.random_flip_mask(tf.shape(values), seed, rate, precision=precision)
    return ops.apply_bit_errors(values, flip).numpy()

  return median_seconds(run, repeats)


def bench_mask_only(values, rate, precision, repeats):
  from tfbet import ops  # pylint: disable=g-import-not-at-top

  def run(index):
    return ops.random_flip_mask(tf.shape(values), tf.constant(1000 + index, tf.int64), rate,
                                precision=precision).numpy()

  return median_seconds(run, repeats)


def bench_copy(values, repeats):
  """The memory-bandwidth floor: one read and one write of the codes."""
  codes = values.numpy()
  target = np.empty_like(codes)
  return median_seconds(lambda index: np.copyto(target, codes), repeats)


def bench_numpy(values, rate, precision, repeats):
  codes = values.numpy()
  keep = (np.arange(8) < precision)

  def run(index):
    generator = np.random.Generator(np.random.Philox(1000 + index))
    bits = (generator.random((codes.size, 8)) <= rate) & keep
    flip = np.packbits(bits, axis=1, bitorder="little").reshape(codes.shape)
    return codes ^ flip

  return median_seconds(run, repeats)


def bench_tensorflow(values, rate, precision, repeats):
  weights = tf.constant([(1 << b) if b < precision else 0 for b in range(8)], tf.int32)

  @tf.function(input_signature=[tf.TensorSpec([2], tf.int64), tf.TensorSpec([None], tf.uint8)])
  def perturb(seed, codes):
    uniforms = tf.random.stateless_uniform(tf.concat([tf.shape(codes), [8]], 0), seed=seed)
    bits = tf.cast(uniforms <= rate, tf.int32)
    flip = tf.cast(tf.reduce_sum(bits * weights, axis=1), tf.uint8)
    return tf.bitwise.bitwise_xor(codes, flip)

  def run(index):
    return perturb(tf.constant([1000 + index, 7], tf.int64), values).numpy()

  return median_seconds(run, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--weights", type=int, default=SIMPLENET_CIFAR_WEIGHTS)
  parser.add_argument("--rate", type=float, default=0.01)
  parser.add_argument("--precision", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--threads", type=int, default=0,
                      help="intra-op threads for TensorFlow (0: TensorFlow's default)")
  args = parser.parse_args()
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

  rng = np.random.default_rng(0)
  values = tf.constant(rng.integers(0, 256, size=args.weights, dtype=np.uint8))
  print(f"{args.weights:,} weights, m = {args.precision}, p = {args.rate}, "
        f"{os.cpu_count()} CPUs, intra-op threads = "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"median of {args.repeats} runs")
  op = bench_op(values, args.rate, args.precision, args.repeats)
  mask_only = bench_mask_only(values, args.rate, args.precision, args.repeats)
  floor = bench_copy(values, args.repeats)
  reference = bench_numpy(values, args.rate, args.precision, args.repeats)
  pure_tf = bench_tensorflow(values, args.rate, args.precision, args.repeats)
  op_cpu, mask_cpu, floor_cpu, reference_cpu, pure_tf_cpu = CPU_SECONDS
  print("                                    wall ms    CPU ms   wall ratio  CPU ratio")

  def line(label, wall, cpu, ratio=""):
    print(f"  {label:32s} {1e3 * wall:8.1f}  {1e3 * cpu:8.1f}   {ratio}")

  line("(a) tfbet op  (mask + apply)", op, op_cpu)
  line("    of which the mask alone", mask_only, mask_cpu)
  line("memory floor  (copy the codes)", floor, floor_cpu,
       f"op takes {op / floor:5.1f}x  {op_cpu / floor_cpu:5.1f}x the floor")
  line("(b) numpy     (uniform per bit)", reference, reference_cpu,
       f"op is {reference / op:5.1f}x  {reference_cpu / op_cpu:5.1f}x faster")
  line("(c) pure TF   (uniform per bit)", pure_tf, pure_tf_cpu,
       f"op is {pure_tf / op:5.1f}x  {pure_tf_cpu / op_cpu:5.1f}x faster")
  print("  (CPU ms: all threads of the process; the wall time also counts waiting for the cores)")
  bench_gpu(values, args.rate, args.precision, args.repeats, op)


def bench_gpu(values, rate, precision, repeats, cpu_op):
  """(d) the op on the first GPU, where one is visible and the library has the CUDA kernels."""
  from tfbet import ops  # pylint: disable=g-import-not-at-top
  if not tf.config.list_physical_devices("GPU"):
    print("  (d) GPU: none visible, skipped")
    return
  with tf.device("/GPU:0"):
    codes = tf.identity(values)
    if "GPU" not in ops.random_flip_mask([8], 1, 0.5).device:
      print("  (d) GPU: the op library has no GPU kernels (build with TFBET_BUILD_CUDA=1), skipped")
      return

    def run(index):
      flip = ops.random_flip_mask(tf.shape(codes), tf.constant(1000 + index, tf.int64), rate,
                                  precision=precision)
      return ops.apply_bit_errors(codes, flip).numpy()  # .numpy() waits for the GPU

    gpu = median_seconds(run, repeats)
  print(f"  (d) tfbet op on {tf.config.list_physical_devices('GPU')[0].name} (mask + apply, "
        f"incl. copy to host): {1e3 * gpu:8.2f} ms   {cpu_op / gpu:5.1f}x the CPU op")

if __name__ == "__main__":
  main()
