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

// The CPU path of the flip mask works on kLanes groups at a time, structure of arrays, so that
// the compiler vectorizes Philox (integer arithmetic, hence the same words on every ISA).  The
// double arithmetic calls the functions of bit_errors.h, so it gives the same bits as the GPU.
constexpr int kLanes = 64;

// On x86-64 Linux with GCC, the Philox loops below are compiled for AVX-512, AVX2 and the
// baseline, and the variant is picked at load time.  They hold no floating point arithmetic.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define TFBET_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TFBET_MULTIVERSION
#endif

// kLanes Philox counters (in) or output words (out): word[j][lane].
struct PhiloxLanes {
  alignas(64) uint32_t word[4][kLanes];

  // Counter (group, substream) of bit_errors.h GroupBlock, in lane `lane`.
  void SetCounter(int lane, uint64_t group, uint32_t substream) {
    word[0][lane] = static_cast<uint32_t>(group);
    word[1][lane] = static_cast<uint32_t>(group >> 32);
    word[2][lane] = substream;
    word[3][lane] = 0;
  }
};

// Philox4x32-10 of every lane, in place: the rounds and key schedule of PhiloxRandom (the tests
// check the ops against an independent implementation and the Random123 answers), lane by lane.
TFBET_MULTIVERSION
void PhiloxInPlace(uint64_t seed, PhiloxLanes* lanes) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    c0[l] = lanes->word[0][l];
    c1[l] = lanes->word[1][l];
    c2[l] = lanes->word[2][l];
    c3[l] = lanes->word[3][l];
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
  for (int l = 0; l < kLanes; ++l) {
    lanes->word[0][l] = c0[l];
    lanes->word[1][l] = c1[l];
    lanes->word[2][l] = c2[l];
    lanes->word[3][l] = c3[l];
  }
}

// Filter blocks (h, 0) of the kLanes block indices h = first_block, first_block + 1, ...: the
// same rounds as PhiloxInPlace, with the counters made in place (cheaper than filling
// PhiloxLanes), cut into the 16-bit filter bits of bit_errors.h FilterBitsOf:
// filter[8 l + c] belongs to group 8 (first_block + l) + c.
TFBET_MULTIVERSION
void FilterBlocks(uint64_t seed, uint64_t first_block, uint16_t* filter) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t block = first_block + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(block);
    c1[l] = static_cast<uint32_t>(block >> 32);
    c2[l] = 0;  // substream 0
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
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < kLanes; ++l) {
    const uint32_t words[4] = {c0[l], c1[l], c2[l], c3[l]};
    for (int w = 0; w < 4; ++w) {
      filter[8 * l + 2 * w] = static_cast<uint16_t>(words[w] & 0xFFFFu);
      filter[8 * l + 2 * w + 1] = static_cast<uint16_t>(words[w] >> 16);
    }
  }
}

// Groups that passed the fast-path filter, waiting for their exact flip mask byte.
struct PendingGroups {
  static constexpr int kCapacity = 8 * kLanes + kLanes;  // one batch of filter bits + leftovers
  int count = 0;
  int64_t element[kCapacity];
  uint32_t filter_bits[kCapacity];
};

// Exact flip mask bytes of up to kLanes pending groups starting at `first`: the uniforms of
// bit_errors.h (GroupMinimum, AboveMinimum), with blocks (g, 1) and (g, 2) drawn lane-parallel
// and every loop over lanes free of branches, so that it vectorizes (IEEE +, -, *, /, sqrt give
// the same bits in vector registers).  Each byte is XORed into out[element] (zero for a mask, the
// codes for fused application).
TFBET_MULTIVERSION
void ExactFlipBytes(uint64_t seed, uint64_t first_group, const PendingGroups& pending, int first,
                    int count, double rate, uint8_t precision_mask, uint8_t* out) {
  PhiloxLanes second;
  PhiloxLanes third;
  for (int l = 0; l < kLanes; ++l) {
    const int index = first + (l < count ? l : 0);
    const uint64_t group = first_group + static_cast<uint64_t>(pending.element[index]);
    second.SetCounter(l, group, 1);
    third.SetCounter(l, group, 2);
  }
  PhiloxInPlace(seed, &second);
  PhiloxInPlace(seed, &third);
  alignas(64) double minimum[kLanes];
  alignas(64) uint32_t faulty[kLanes];  // bit k: the k-th non-minimum bit has u <= rate
  for (int l = 0; l < kLanes; ++l) {
    const int index = first + (l < count ? l : 0);
    minimum[l] = GroupMinimum(MinimumBits(pending.filter_bits[index], second.word[0][l]));
    faulty[l] = 0;
  }
  const uint32_t* words[7] = {second.word[1], second.word[2], second.word[3], third.word[0],
                              third.word[1],  third.word[2],  third.word[3]};
  for (int k = 0; k < 7; ++k) {
    const uint32_t* word = words[k];
    for (int l = 0; l < kLanes; ++l) {
      faulty[l] |= (AboveMinimum(minimum[l], word[l]) <= rate ? 1u : 0u) << k;
    }
  }
  alignas(64) uint8_t bytes[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    // Spread the seven bits around the minimum's position j: bits below j stay, the others move
    // up by one, and bit j is the minimum's own.
    const uint32_t position = MinimumPosition(second.word[0][l]);
    const uint32_t below = faulty[l] & ((1u << position) - 1u);
    const uint32_t above = (faulty[l] >> position) << (position + 1);
    const uint32_t own = (minimum[l] <= rate ? 1u : 0u) << position;
    bytes[l] = static_cast<uint8_t>(below | above | own) & precision_mask;
  }
  for (int l = 0; l < count; ++l) out[pending.element[first + l]] ^= bytes[l];
}

// Appends to `pending` the elements first_element + j, j in [from, to) of 0..63, whose filter
// value bits[j] is below filter_below.  Most are not: the comparison runs 16 lanes at a time and
// only the survivors are visited.
void CollectPending(const uint16_t* bits, int64_t first_element, int from, int to,
                    uint32_t filter_below, PendingGroups* pending) {
  uint64_t survivors = 0;
  if (filter_below > 0xFFFFu) {  // every 16-bit value passes
    survivors = ~uint64_t{0};
  } else {
#if defined(__SSE2__)
    // Unsigned a < b as signed (a ^ 0x8000) < (b ^ 0x8000).
    const __m128i bias = _mm_set1_epi16(static_cast<int16_t>(0x8000));
    const __m128i bound =
        _mm_xor_si128(_mm_set1_epi16(static_cast<int16_t>(filter_below)), bias);
    for (int j = 0; j < 64; j += 16) {
      const __m128i low =
          _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(bits + j)), bias);
      const __m128i high =
          _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(bits + j + 8)), bias);
      const __m128i below =
          _mm_packs_epi16(_mm_cmplt_epi16(low, bound), _mm_cmplt_epi16(high, bound));
      survivors |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(below)))
                   << j;
    }
#else
    for (int j = 0; j < 64; ++j) {
      survivors |= static_cast<uint64_t>(bits[j] < filter_below ? 1u : 0u) << j;
    }
#endif
  }
  if (from > 0) survivors &= ~uint64_t{0} << from;
  if (to < 64) survivors &= (uint64_t{1} << to) - 1;
  while (survivors) {
    const int j = __builtin_ctzll(survivors);
    survivors &= survivors - 1;
    pending->element[pending->count] = first_element + j;
    pending->filter_bits[pending->count] = bits[j];
    ++pending->count;
  }
}

// The flip mask of groups first_group + [begin, end), XORed into out[begin, end) (which holds
// zeros for a mask, or the codes to perturb): filter blocks for 8 kLanes groups at a time; the
// few groups whose minimum may be <= rate queue for the exact path.
void FlipMaskRange(uint64_t seed, uint64_t first_group, const RateThreshold& threshold,
                   uint8_t precision_mask, int64_t begin, int64_t end, uint8_t* out) {
  PendingGroups pending;
  const auto flush = [&](int keep_below_lanes) {
    int start = 0;
    for (; pending.count - start >= keep_below_lanes && pending.count > start; start += kLanes) {
      const int count = pending.count - start < kLanes ? pending.count - start : kLanes;
      ExactFlipBytes(seed, first_group, pending, start, count, threshold.rate, precision_mask,
                     out);
    }
    // Leftovers (fewer than a full set of lanes) move to the front and wait for the next batch.
    for (int i = start; i < pending.count; ++i) {
      pending.element[i - start] = pending.element[i];
      pending.filter_bits[i - start] = pending.filter_bits[i];
    }
    pending.count -= start;
  };
  alignas(64) uint16_t filter[8 * kLanes];
  const uint64_t first = first_group + static_cast<uint64_t>(begin);
  const uint64_t last = first_group + static_cast<uint64_t>(end);  // one past the last group
  for (uint64_t block = first >> 3; 8 * block < last; block += kLanes) {
    FilterBlocks(seed, block, filter);
    for (int j = 0; j < 8 * kLanes; j += 64) {
      const uint64_t base = 8 * block + j;  // group of filter[j]
      if (base + 64 <= first) continue;
      if (base >= last) break;
      const int from = base < first ? static_cast<int>(first - base) : 0;
      const int to = base + 64 > last ? static_cast<int>(last - base) : 64;
      CollectPending(filter + j, static_cast<int64_t>(base - first_group), from, to,
                     threshold.filter_below, &pending);
    }
    flush(/*keep_below_lanes=*/kLanes);
  }
  flush(/*keep_below_lanes=*/1);
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
      std::memset(mask + begin, 0, end - begin);
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
