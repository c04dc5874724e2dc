/* CPU kernels of the tfbet bit error ops (and their GPU registrations when built with CUDA).

Every kernel validates every input with OP_REQUIRES and shards its work over element ranges on
the intra-op thread pool.  The value of an element depends only on its bit addresses (see
bit_errors.h), never on the sharding, so results are bit-identical for any thread count.
*/
#define EIGEN_USE_THREADS

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bit_errors.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tfbet {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::DEVICE_GPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::TensorShapeUtils;

using CPUDevice = Eigen::ThreadPoolDevice;
using GPUDevice = Eigen::GpuDevice;
using Status = ::absl::Status;

namespace {

// An InvalidArgument status whose message concatenates the arguments.
template <typename... Args>
Status InvalidArgument(const Args&... args) {
  return ::absl::InvalidArgumentError(::absl::StrCat(args...));
}

// Rough cycles per element, for the sharding cost model only (never affects results).
constexpr int64_t kFlipCostPerByte = 40;
constexpr int64_t kAsymmetricCostPerByte = 800;
constexpr int64_t kProfiledCostPerByte = 600;
constexpr int64_t kApplyCostPerByte = 2;

// Tolerance on p0t1 + p1t0 <= 1 per cell of a profiled map (maps are often float32).
constexpr double kMapSumTolerance = 1e-6;

// Runs work(begin, end) over element ranges covering [0, total) on the intra-op thread pool.
template <typename Work>
void ShardElements(OpKernelContext* context, int64_t total, int64_t cost_per_unit,
                   const Work& work) {
  const auto& threads = *context->device()->tensorflow_cpu_worker_threads();
  ::tensorflow::Shard(threads.num_threads, threads.workers, total, cost_per_unit,
                      [&work](int64_t begin, int64_t end) { work(begin, end); });
}

// Reads the 1-D `shape` input (input 0) into a TensorShape; every dimension must be >= 0.
template <typename T>
Status ReadShape(OpKernelContext* context, TensorShape* shape) {
  const Tensor& shape_tensor = context->input(0);
  if (!TensorShapeUtils::IsVector(shape_tensor.shape())) {
    return InvalidArgument("shape must be a 1-D tensor of dimensions, got shape ",
                           shape_tensor.shape().DebugString());
  }
  const auto dims = shape_tensor.flat<T>();
  std::vector<int64_t> sizes(dims.size());
  for (int64_t d = 0; d < dims.size(); ++d) {
    if (dims(d) < 0) {
      return InvalidArgument("shape must hold dimensions >= 0, got ", dims(d), " at position ",
                             d);
    }
    sizes[d] = static_cast<int64_t>(dims(d));
  }
  const Status status = TensorShapeUtils::MakeShape(sizes, shape);
  if (!status.ok()) {
    return InvalidArgument("shape is not a valid tensor shape: ", status.message());
  }
  return ::absl::OkStatus();
}

// Reads the scalar input `index`, called `name` in messages.
template <typename T>
Status ReadScalar(OpKernelContext* context, int index, const char* name, T* value) {
  const Tensor& tensor = context->input(index);
  if (!TensorShapeUtils::IsScalar(tensor.shape())) {
    return InvalidArgument(name, " must be a scalar, got shape ", tensor.shape().DebugString());
  }
  *value = tensor.scalar<T>()();
  return ::absl::OkStatus();
}

// A probability in [0, 1]; NaN is rejected too.
Status ReadRate(OpKernelContext* context, int index, const char* name, double* rate) {
  TF_RETURN_IF_ERROR(ReadScalar<double>(context, index, name, rate));
  if (!(*rate >= 0.0 && *rate <= 1.0)) {
    return InvalidArgument(name, " must be in [0, 1], got ", *rate);
  }
  return ::absl::OkStatus();
}

// The precision m in 1..8 (bits per weight that hold the code).
Status ReadPrecision(OpKernelContext* context, int index, int* precision) {
  int32_t value = 0;
  TF_RETURN_IF_ERROR(ReadScalar<int32_t>(context, index, "precision", &value));
  if (value < 1 || value > 8) {
    return InvalidArgument("precision must be in 1..8 (bits per weight), got ", value);
  }
  *precision = value;
  return ::absl::OkStatus();
}

// The bit offset: >= 0, a multiple of 8 if `byte_aligned`, and small enough that the last bit
// address offset + 8 * elements - 1 fits in an int64.
Status ReadOffset(OpKernelContext* context, int index, bool byte_aligned, int64_t elements,
                  int64_t* offset) {
  TF_RETURN_IF_ERROR(ReadScalar<int64_t>(context, index, "offset", offset));
  if (*offset < 0) {
    return InvalidArgument("offset must be >= 0 (a bit address), got ", *offset);
  }
  if (byte_aligned && *offset % 8 != 0) {
    return InvalidArgument("offset must be a multiple of 8 (byte aligned) for this op, got ",
                           *offset, "; the profiled masks accept any offset");
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // The last bit address offset + 8 * elements - 1 may be kMax itself (the last valid byte).
  if (elements > kMax / 8 || (elements > 0 && *offset > kMax - (8 * elements - 1))) {
    return InvalidArgument("offset + 8 * number of elements must fit in an int64, got offset ",
                           *offset, " for ", elements, " elements");
  }
  return ::absl::OkStatus();
}

// Both maps 2-D, same nonempty shape, values in [0, 1], p0t1 + p1t0 <= 1 (+ tolerance) per cell.
template <typename MapT>
Status ValidateMaps(const Tensor& p0t1, const Tensor& p1t0) {
  if (!TensorShapeUtils::IsMatrix(p0t1.shape())) {
    return InvalidArgument("p0t1 must be a 2-D rows x cols map, got shape ",
                           p0t1.shape().DebugString());
  }
  if (p0t1.shape() != p1t0.shape()) {
    return InvalidArgument("p0t1 and p1t0 must have the same 2-D shape, got ",
                           p0t1.shape().DebugString(), " and ", p1t0.shape().DebugString());
  }
  if (p0t1.NumElements() == 0) {
    return InvalidArgument("p0t1 and p1t0 must not be empty, got shape ",
                           p0t1.shape().DebugString());
  }
  const auto to_one = p0t1.flat<MapT>();
  const auto to_zero = p1t0.flat<MapT>();
  const int64_t cols = p0t1.dim_size(1);
  for (int64_t c = 0; c < to_one.size(); ++c) {
    const double a = static_cast<double>(to_one(c));
    const double b = static_cast<double>(to_zero(c));
    if (!(a >= 0.0 && a <= 1.0)) {
      return InvalidArgument("p0t1 must hold probabilities in [0, 1], got ", a, " at row ",
                             c / cols, ", col ", c % cols);
    }
    if (!(b >= 0.0 && b <= 1.0)) {
      return InvalidArgument("p1t0 must hold probabilities in [0, 1], got ", b, " at row ",
                             c / cols, ", col ", c % cols);
    }
    if (a + b > 1.0 + kMapSumTolerance) {
      return InvalidArgument("p0t1 + p1t0 must be <= 1 in every cell, got ", a, " + ", b,
                             " at row ", c / cols, ", col ", c % cols);
    }
  }
  return ::absl::OkStatus();
}

// The CPU path of the flip mask works on kLanes Philox blocks at a time, structure of arrays, so
// that the compiler vectorizes Philox (integer arithmetic, hence the same words on every ISA).
// The double arithmetic calls the functions of bit_errors.h, so it gives the same bits as the GPU.
constexpr int kLanes = 64;

// On x86-64 Linux with GCC, the lane loops below are compiled for AVX-512, AVX2 and the
// baseline, and the variant is picked at load time.  Their floating point arithmetic is IEEE
// +, -, *, /, sqrt and exact conversions only, which give the same bits in every variant.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define TFBET_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TFBET_MULTIVERSION
#endif

// Philox words of kLanes blocks: word[j][lane].
struct PhiloxLanes {
  alignas(64) uint32_t word[4][kLanes];
};

// Philox4x32-10 (PhiloxRandom's rounds and key schedule; the tests check the ops against an
// independent implementation and the Random123 answers) of the kLanes blocks
// (counter[l], substream), l = 0 .. kLanes - 1, into out->word[j][l]: lane loops that the
// compiler vectorizes (multiversioned).  The rounds are written only here for the CPU; the GPU
// uses PhiloxRandom itself (bit_errors.h), and the tests compare both with numpy.
TFBET_MULTIVERSION
void PhiloxBlocks(uint64_t seed, const uint64_t* __restrict counter, uint32_t substream,
                          PhiloxLanes* __restrict out) {
  uint32_t* c0 = out->word[0];
  uint32_t* c1 = out->word[1];
  uint32_t* c2 = out->word[2];
  uint32_t* c3 = out->word[3];
  for (int l = 0; l < kLanes; ++l) {
    c0[l] = static_cast<uint32_t>(counter[l]);
    c1[l] = static_cast<uint32_t>(counter[l] >> 32);
    c2[l] = substream;
    c3[l] = 0;
  }
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t product0 = static_cast<uint64_t>(0xD2511F53u) * c0[l];
      const uint64_t product1 = static_cast<uint64_t>(0xCD9E8D57u) * c2[l];
      const uint32_t next0 = static_cast<uint32_t>(product1 >> 32) ^ c1[l] ^ k0;
      const uint32_t next2 = static_cast<uint32_t>(product0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<uint32_t>(product1);
      c3[l] = static_cast<uint32_t>(product0);
      c0[l] = next0;
      c2[l] = next2;
    }
    k0 += 0x9E3779B9u;  // Philox4x32 key schedule
    k1 += 0xBB67AE85u;
  }
}


// Filter blocks (h, 0) of the kLanes block indices h = first_block, first_block + 1, ...:
// filter->word[w][l] holds the filter bits of groups 8 (first_block + l) + 2 w (low half) and
// + 2 w + 1 (high half), as bit_errors.h FilterBitsOf cuts them; pass[2 w + half][l] is 0xFF
// where that half is below filter_below (the group may hold a faulty bit), else 0.
TFBET_MULTIVERSION
void FilterPass(const PhiloxLanes& filter, uint32_t filter_below,
                uint8_t (*__restrict pass)[kLanes]) {
  for (int w = 0; w < 4; ++w) {
    for (int l = 0; l < kLanes; ++l) {
      const uint32_t word = filter.word[w][l];
      pass[2 * w][l] = (word & 0xFFFFu) < filter_below ? 0xFF : 0;
      pass[2 * w + 1][l] = (word >> 16) < filter_below ? 0xFF : 0;
    }
  }
}

void FilterBlocks(uint64_t seed, uint64_t first_block, uint32_t filter_below,
                  PhiloxLanes* filter, uint8_t (*pass)[kLanes]) {
  alignas(64) uint64_t block[kLanes];
  for (int l = 0; l < kLanes; ++l) block[l] = first_block + static_cast<uint64_t>(l);
  PhiloxBlocks(seed, block, /*substream=*/0, filter);
  FilterPass(*filter, filter_below, pass);
}

// Groups that passed the fast-path filter, waiting for their exact flip mask byte.  A full set of
// filter blocks adds at most 8 kLanes; up to kLanes - 1 wait from before, and a last partial set
// of lanes is padded up to kLanes entries.
struct PendingGroups {
  static constexpr int kCapacity = 8 * kLanes + 2 * kLanes;
  int count = 0;
  alignas(64) uint64_t group[kCapacity];
  alignas(64) uint32_t filter_bits[kCapacity];
};

// Exact flip mask bytes of kLanes groups from their filter bits and their blocks (g, 1)
// (`second`) and (g, 2) (`third`): the uniforms of bit_errors.h (MinimumSource, GroupMinimum,
// AboveMinimum) in one branch-free loop over lanes, so that it vectorizes (bytes are 32-bit
// lanes: GCC does not vectorize the doubles for AVX2 next to 8-bit stores).
TFBET_MULTIVERSION
void ExactBytes(const PhiloxLanes& second, const PhiloxLanes& third,
                const uint32_t* __restrict filter_bits, double rate, uint32_t precision_mask,
                uint32_t* __restrict bytes) {
  for (int l = 0; l < kLanes; ++l) {
    const double minimum = GroupMinimum(MinimumSource(filter_bits[l], second.word[0][l]));
    // Bit k: the k-th non-minimum bit (in bit order) has u <= rate.
    const uint32_t faulty = (AboveMinimum(minimum, second.word[1][l]) <= rate ? 1u : 0u) |
                            (AboveMinimum(minimum, second.word[2][l]) <= rate ? 2u : 0u) |
                            (AboveMinimum(minimum, second.word[3][l]) <= rate ? 4u : 0u) |
                            (AboveMinimum(minimum, third.word[0][l]) <= rate ? 8u : 0u) |
                            (AboveMinimum(minimum, third.word[1][l]) <= rate ? 16u : 0u) |
                            (AboveMinimum(minimum, third.word[2][l]) <= rate ? 32u : 0u) |
                            (AboveMinimum(minimum, third.word[3][l]) <= rate ? 64u : 0u);
    // Spread the seven bits around the minimum's position j: bits below j stay, the others move
    // up by one, and bit j is the minimum's own.
    const uint32_t position = MinimumPosition(second.word[0][l]);
    const uint32_t below = faulty & ((1u << position) - 1u);
    const uint32_t above = (faulty >> position) << (position + 1);
    const uint32_t own = (minimum <= rate ? 1u : 0u) << position;
    bytes[l] = (below | above | own) & precision_mask;
  }
}

// Exact flip mask bytes of the kLanes groups group[0 .. kLanes) with their filter bits.
void ExactFlipBytes(uint64_t seed, const uint64_t* group, const uint32_t* filter_bits,
                    double rate, uint32_t precision_mask, uint32_t* bytes) {
  PhiloxLanes second;
  PhiloxLanes third;
  PhiloxBlocks(seed, group, /*substream=*/1, &second);
  PhiloxBlocks(seed, group, /*substream=*/2, &third);
  ExactBytes(second, third, filter_bits, rate, precision_mask, bytes);
}

// Bit l of the result is set iff pass[l] is nonzero, l in 0..63.
uint64_t PassMask(const uint8_t* pass) {
  uint64_t lanes = 0;
#if defined(__SSE2__)
  for (int l = 0; l < 64; l += 16) {
    const __m128i bytes = _mm_load_si128(reinterpret_cast<const __m128i*>(pass + l));
    lanes |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(bytes))) << l;
  }
#else
  for (int l = 0; l < 64; ++l) lanes |= static_cast<uint64_t>(pass[l] != 0 ? 1u : 0u) << l;
#endif
  return lanes;
}

// Appends to `pending` the groups of the filter blocks first_block + [0, kLanes) that lie in
// [first, last) and passed the filter (FilterBlocks).  Most do not: only the survivors are
// visited.
void CollectPending(const PhiloxLanes& filter, const uint8_t (*pass)[kLanes],
                    uint64_t first_block, uint64_t first, uint64_t last, PendingGroups* pending) {
  static_assert(kLanes == 64, "one 64-bit lane mask per filter half");
  const bool whole = 8 * first_block >= first && 8 * (first_block + kLanes) <= last;
  int count = pending->count;
  for (int row = 0; row < 8; ++row) {
    const int w = row >> 1;
    const int shift = 16 * (row & 1);
    uint64_t survivors = PassMask(pass[row]);
    while (survivors) {
      const int l = __builtin_ctzll(survivors);
      survivors &= survivors - 1;
      const uint64_t group = 8 * (first_block + l) + row;
      if (!whole && (group < first || group >= last)) continue;
      pending->group[count] = group;
      pending->filter_bits[count] = (filter.word[w][l] >> shift) & 0xFFFFu;
      ++count;
    }
  }
  pending->count = count;
}

// The flip mask of groups first_group + [begin, end) into out[begin, end) (out[i] belongs to
// group first_group + i): filter blocks for 8 kLanes groups at a time, whose part of `out` is
// zeroed then (while it is in cache); the few groups whose minimum may be <= rate queue for the
// exact path, kLanes at a time, and XOR their bytes in.
void FlipMaskRange(uint64_t seed, uint64_t first_group, const RateThreshold& threshold,
                   uint8_t precision_mask, int64_t begin, int64_t end, uint8_t* out) {
  PendingGroups pending;
  alignas(64) uint32_t bytes[kLanes];
  // Runs the exact path on sets of kLanes pending groups while at least `at_least` wait.
  const auto flush = [&](int at_least) {
    int start = 0;
    while (pending.count - start >= at_least && pending.count > start) {
      const int count = pending.count - start < kLanes ? pending.count - start : kLanes;
      for (int l = count; l < kLanes; ++l) {  // pad a last partial set (bytes not used)
        pending.group[start + l] = pending.group[start];
        pending.filter_bits[start + l] = pending.filter_bits[start];
      }
      ExactFlipBytes(seed, pending.group + start, pending.filter_bits + start, threshold.rate,
                     precision_mask, bytes);
      for (int l = 0; l < count; ++l) {
        out[pending.group[start + l] - first_group] ^= static_cast<uint8_t>(bytes[l]);
      }
      start += count;
    }
    // Leftovers (fewer than a full set of lanes) move to the front and wait for the next batch.
    const int left = pending.count - start;
    if (start > 0 && left > 0) {
      std::memmove(pending.group, pending.group + start, left * sizeof(pending.group[0]));
      std::memmove(pending.filter_bits, pending.filter_bits + start,
                   left * sizeof(pending.filter_bits[0]));
    }
    pending.count = left;
  };
  PhiloxLanes filter;
  alignas(64) uint8_t pass[8][kLanes];
  const uint64_t first = first_group + static_cast<uint64_t>(begin);
  const uint64_t last = first_group + static_cast<uint64_t>(end);  // one past the last group
  for (uint64_t block = first >> 3; 8 * block < last; block += kLanes) {
    const uint64_t from = 8 * block > first ? 8 * block : first;
    const uint64_t to = 8 * (block + kLanes) < last ? 8 * (block + kLanes) : last;
    std::memset(out + (from - first_group), 0, to - from);
    FilterBlocks(seed, block, threshold.filter_below, &filter, pass);
    CollectPending(filter, pass, block, first, last, &pending);
    flush(/*at_least=*/kLanes);
  }
  flush(/*at_least=*/1);
}

// ((v ^ flip) | set) & ~clear over a range.  `output` may be `values` itself (the kernel forwards
// the input buffer when it can), but never overlaps the masks; every element is read before it is
// written, so the loop is safe in place and vectorizes.
void ApplyRange(const uint8_t* values, const uint8_t* __restrict flip,
                const uint8_t* __restrict set, const uint8_t* __restrict clear, int64_t size,
                uint8_t* output) {
  for (int64_t i = 0; i < size; ++i) {
    output[i] = ApplyBitErrorsByte(values[i], flip[i], set[i], clear[i]);
  }
}

uint8_t PrecisionMask(int precision) { return static_cast<uint8_t>((1u << precision) - 1u); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// CPU functors.

namespace functor {

template <>
struct RandomFlipMaskFunctor<CPUDevice> {
  void operator()(OpKernelContext* context, uint64_t seed, uint64_t first_group,
                  const RateThreshold& threshold, uint8_t precision_mask, int64_t size,
                  uint8_t* mask) {
    // u lies in (0, 1], so rate 0 sets no bit and rate 1 every bit: shortcuts, same result.
    if (threshold.rate == 0.0) {
      std::memset(mask, 0, size);
      return;
    }
    if (threshold.rate == 1.0) {
      std::memset(mask, precision_mask, size);
      return;
    }
    ShardElements(context, size, kFlipCostPerByte, [&](int64_t begin, int64_t end) {
      FlipMaskRange(seed, first_group, threshold, precision_mask, begin, end, mask);
    });
  }
};

template <>
struct AsymmetricMasksFunctor<CPUDevice> {
  void operator()(OpKernelContext* context, uint64_t seed, uint64_t first_group,
                  const RateThreshold& set_threshold, bool any_clear, double clear_above,
                  uint8_t precision_mask, int64_t size, uint8_t* set_mask, uint8_t* clear_mask) {
    if (!any_clear) {  // the set mask is the flip mask at rate 0-to-1
      std::memset(clear_mask, 0, size);
      RandomFlipMaskFunctor<CPUDevice>()(context, seed, first_group, set_threshold,
                                         precision_mask, size, set_mask);
      return;
    }
    ShardElements(context, size, kAsymmetricCostPerByte, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t group = first_group + static_cast<uint64_t>(i);
        AsymmetricMaskBytes(seed, group, GroupFilterBits(seed, group), set_threshold, any_clear,
                            clear_above, precision_mask, &set_mask[i], &clear_mask[i]);
      }
    });
  }
};

template <>
struct ApplyBitErrorsFunctor<CPUDevice> {
  void operator()(OpKernelContext* context, const uint8_t* values, const uint8_t* flip,
                  const uint8_t* set, const uint8_t* clear, int64_t size, uint8_t* output) {
    ShardElements(context, size, kApplyCostPerByte, [&](int64_t begin, int64_t end) {
      ApplyRange(values + begin, flip + begin, set + begin, clear + begin, end - begin,
                 output + begin);
    });
  }
};

}  // namespace functor

// ---------------------------------------------------------------------------------------------
// Kernels.

// TfbetRandomFlipMask(shape, seed, rate, precision, offset) -> mask.
template <typename Device, typename T>
class RandomFlipMaskOp : public OpKernel {
 public:
  explicit RandomFlipMaskOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    TensorShape shape;
    int64_t seed;
    double rate;
    int precision;
    int64_t offset;
    OP_REQUIRES_OK(context, ReadShape<T>(context, &shape));
    OP_REQUIRES_OK(context, ReadScalar<int64_t>(context, 1, "seed", &seed));
    OP_REQUIRES_OK(context, ReadRate(context, 2, "rate", &rate));
    OP_REQUIRES_OK(context, ReadPrecision(context, 3, &precision));
    OP_REQUIRES_OK(context, ReadOffset(context, 4, /*byte_aligned=*/true,
                                       shape.num_elements(), &offset));

    Tensor* mask = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &mask));
    const int64_t size = shape.num_elements();
    if (size == 0) return;
    functor::RandomFlipMaskFunctor<Device>()(
        context, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset) / 8,
        MakeRateThreshold(rate), PrecisionMask(precision), size, mask->flat<uint8_t>().data());
  }
};

// TfbetAsymmetricMasks(shape, seed, rate_0to1, rate_1to0, precision, offset) -> set, clear.
template <typename Device, typename T>
class AsymmetricMasksOp : public OpKernel {
 public:
  explicit AsymmetricMasksOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    TensorShape shape;
    int64_t seed;
    double rate_0to1;
    double rate_1to0;
    int precision;
    int64_t offset;
    OP_REQUIRES_OK(context, ReadShape<T>(context, &shape));
    OP_REQUIRES_OK(context, ReadScalar<int64_t>(context, 1, "seed", &seed));
    OP_REQUIRES_OK(context, ReadRate(context, 2, "rate_0to1", &rate_0to1));
    OP_REQUIRES_OK(context, ReadRate(context, 3, "rate_1to0", &rate_1to0));
    OP_REQUIRES(context, rate_0to1 + rate_1to0 <= 1.0 + 1e-12,
                InvalidArgument("rate_0to1 + rate_1to0 must be <= 1 (a bit cannot be both), got ",
                                rate_0to1, " + ", rate_1to0));
    OP_REQUIRES_OK(context, ReadPrecision(context, 4, &precision));
    OP_REQUIRES_OK(context, ReadOffset(context, 5, /*byte_aligned=*/true,
                                       shape.num_elements(), &offset));

    Tensor* set_mask = nullptr;
    Tensor* clear_mask = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &set_mask));
    OP_REQUIRES_OK(context, context->allocate_output(1, shape, &clear_mask));
    const int64_t size = shape.num_elements();
    if (size == 0) return;
    // u <= 1 always, so u > 1 - 0 never holds: rate_1to0 = 0 needs no clear pass at all.
    functor::AsymmetricMasksFunctor<Device>()(
        context, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset) / 8,
        MakeRateThreshold(rate_0to1), /*any_clear=*/rate_1to0 > 0.0, 1.0 - rate_1to0,
        PrecisionMask(precision), size, set_mask->flat<uint8_t>().data(),
        clear_mask->flat<uint8_t>().data());
  }
};

// TfbetProfiledMasks(shape, seed, p0t1, p1t0, precision, offset) -> set, clear.  CPU only: it
// serves evaluation on profiled chips, and the maps are validated value by value on the host.
template <typename T, typename MapT>
class ProfiledMasksOp : public OpKernel {
 public:
  explicit ProfiledMasksOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    TensorShape shape;
    int64_t seed;
    int precision;
    int64_t offset;
    OP_REQUIRES_OK(context, ReadShape<T>(context, &shape));
    OP_REQUIRES_OK(context, ReadScalar<int64_t>(context, 1, "seed", &seed));
    const Tensor& p0t1 = context->input(2);
    const Tensor& p1t0 = context->input(3);
    OP_REQUIRES_OK(context, ValidateMaps<MapT>(p0t1, p1t0));
    OP_REQUIRES_OK(context, ReadPrecision(context, 4, &precision));
    OP_REQUIRES_OK(context, ReadOffset(context, 5, /*byte_aligned=*/false,
                                       shape.num_elements(), &offset));

    Tensor* set_mask = nullptr;
    Tensor* clear_mask = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &set_mask));
    OP_REQUIRES_OK(context, context->allocate_output(1, shape, &clear_mask));
    const int64_t size = shape.num_elements();
    if (size == 0) return;

    const MapT* to_one = p0t1.flat<MapT>().data();
    const MapT* to_zero = p1t0.flat<MapT>().data();
    const uint64_t cells = static_cast<uint64_t>(p0t1.NumElements());
    uint8_t* set_data = set_mask->flat<uint8_t>().data();
    uint8_t* clear_data = clear_mask->flat<uint8_t>().data();
    ShardElements(context, size, kProfiledCostPerByte, [&](int64_t begin, int64_t end) {
      int64_t cache_group = -1;  // per shard: groups are computed once in a sequential sweep
      double cache[8];
      for (int64_t i = begin; i < end; ++i) {
        ProfiledMaskBytes<MapT>(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset),
                                static_cast<uint64_t>(i), to_one, to_zero, cells, precision,
                                &cache_group, cache, &set_data[i], &clear_data[i]);
      }
    });
  }

};

// TfbetApplyBitErrors(values, flip, set, clear) -> ((values ^ flip) | set) & ~clear.
template <typename Device>
class ApplyBitErrorsOp : public OpKernel {
 public:
  explicit ApplyBitErrorsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& values = context->input(0);
    static const char* const kMaskNames[] = {"flip", "set", "clear"};
    for (int input = 1; input < 4; ++input) {
      OP_REQUIRES(context, context->input(input).shape() == values.shape(),
                  InvalidArgument(kMaskNames[input - 1], " must have the shape of values ",
                                  values.shape().DebugString(), ", got ",
                                  context->input(input).shape().DebugString()));
    }
    Tensor* output = nullptr;
    // Reuses the buffer of `values` when nothing else holds it (same index in and out).
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output({0}, 0, values.shape(),
                                                                      &output));
    const int64_t size = values.NumElements();
    if (size == 0) return;
    functor::ApplyBitErrorsFunctor<Device>()(
        context, values.flat<uint8_t>().data(), context->input(1).flat<uint8_t>().data(),
        context->input(2).flat<uint8_t>().data(), context->input(3).flat<uint8_t>().data(), size,
        output->flat<uint8_t>().data());
  }
};

// ---------------------------------------------------------------------------------------------
// Registrations.

#define TFBET_REGISTER_CPU_MASK_KERNELS(T)                                                   \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TfbetRandomFlipMask").Device(DEVICE_CPU).TypeConstraint<T>("T"),                 \
      RandomFlipMaskOp<CPUDevice, T>);                                                       \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("TfbetAsymmetricMasks").Device(DEVICE_CPU).TypeConstraint<T>("T"),                \
      AsymmetricMasksOp<CPUDevice, T>);                                                      \
  REGISTER_KERNEL_BUILDER(Name("TfbetProfiledMasks")                                         \
                              .Device(DEVICE_CPU)                                            \
                              .TypeConstraint<T>("T")                                        \
                              .TypeConstraint<float>("Tmap"),                                \
                          ProfiledMasksOp<T, float>);                                        \
  REGISTER_KERNEL_BUILDER(Name("TfbetProfiledMasks")                                         \
                              .Device(DEVICE_CPU)                                            \
                              .TypeConstraint<T>("T")                                        \
                              .TypeConstraint<double>("Tmap"),                               \
                          ProfiledMasksOp<T, double>);

TFBET_REGISTER_CPU_MASK_KERNELS(int32_t);
TFBET_REGISTER_CPU_MASK_KERNELS(int64_t);
#undef TFBET_REGISTER_CPU_MASK_KERNELS

REGISTER_KERNEL_BUILDER(Name("TfbetApplyBitErrors").Device(DEVICE_CPU),
                        ApplyBitErrorsOp<CPUDevice>);

#if GOOGLE_CUDA
// The GPU functors are defined in bit_errors_kernels.cu.cc.  Scalars and the shape stay in host
// memory: the kernels read them before launching.
namespace functor {
extern template struct RandomFlipMaskFunctor<GPUDevice>;
extern template struct AsymmetricMasksFunctor<GPUDevice>;
extern template struct ApplyBitErrorsFunctor<GPUDevice>;
}  // namespace functor

#define TFBET_REGISTER_GPU_MASK_KERNELS(T)                                    \
  REGISTER_KERNEL_BUILDER(Name("TfbetRandomFlipMask")                         \
                              .Device(DEVICE_GPU)                             \
                              .TypeConstraint<T>("T")                         \
                              .HostMemory("shape")                            \
                              .HostMemory("seed")                             \
                              .HostMemory("rate")                             \
                              .HostMemory("precision")                        \
                              .HostMemory("offset"),                          \
                          RandomFlipMaskOp<GPUDevice, T>);                    \
  REGISTER_KERNEL_BUILDER(Name("TfbetAsymmetricMasks")                        \
                              .Device(DEVICE_GPU)                             \
                              .TypeConstraint<T>("T")                         \
                              .HostMemory("shape")                            \
                              .HostMemory("seed")                             \
                              .HostMemory("rate_0to1")                        \
                              .HostMemory("rate_1to0")                        \
                              .HostMemory("precision")                        \
                              .HostMemory("offset"),                          \
                          AsymmetricMasksOp<GPUDevice, T>);

TFBET_REGISTER_GPU_MASK_KERNELS(int32_t);
TFBET_REGISTER_GPU_MASK_KERNELS(int64_t);
#undef TFBET_REGISTER_GPU_MASK_KERNELS

REGISTER_KERNEL_BUILDER(Name("TfbetApplyBitErrors").Device(DEVICE_GPU),
                        ApplyBitErrorsOp<GPUDevice>);
#endif  // GOOGLE_CUDA

}  // namespace tfbet
