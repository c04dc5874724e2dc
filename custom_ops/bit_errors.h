/* Bit error masks for quantized weights: the math shared by the CPU and GPU kernels.

Memory model (docs/design.md §3).  Every quantized weight is stored in one uint8; bit 0 is the
least significant bit.  Bit b of element i of a mask computed at bit offset `offset` has the
global bit address

    a = offset + 8 * i + b.

A chip is a 64-bit seed.  Every bit address a owns one uniform u(seed, a) in (0, 1], and a bit is
faulty at rate p iff u(seed, a) <= p.  Because u does not depend on p, the faulty bits at p' <= p
are exactly a subset of those at p (the nesting of Sec. 3 of the paper), any slice of memory can
be computed on its own (only the offset is needed), and nothing is stored per chip.

Uniforms, per group of eight addresses.  The addresses 8g .. 8g+7 form group g = a / 8 (one
byte-aligned element).  Their eight uniforms are iid U(0, 1], drawn from Philox4x32-10 (Salmon et
al., SC 2011; TensorFlow's implementation) with the key (lo32(seed), hi32(seed)) of the seed's 64
bits.  A counter (lo32(n), hi32(n), substream, 0) names block (n, substream):

  * Filter bits: block (g / 8, 0) serves the eight groups 8h .. 8h+7 of h = g / 8, 16 bits each:
    group g takes half (g mod 2) (0 = low half) of word (g / 2) mod 4, call it F in [0, 2^16).
  * Block (g, 1), word 0 = w: the 45-bit uniform U = (k + 1) 2^-45 in (0, 1] with
    k = F 2^29 + (w >> 3), and the position j = w mod 8 of the group minimum (uniform, independent
    of U).  The minimum of eight iid uniforms has the distribution function 1 - (1 - x)^8, so
    M = 1 - (1 - U)^(1/8) has exactly the law of that minimum, and u_j = M.
  * Given the minimum, the other seven uniforms are iid uniform on (M, 1]:
    u_b = min(1, M + (1 - M) * V_b), with V_b = (w + 1) 2^-32 for the words w, taken in bit
    order (skipping j), of words 1..3 of block (g, 1) and words 0..3 of block (g, 2).
  * Fast path: the group holds a bit with u <= p iff M <= p iff U <= t(p) = 1 - (1 - p)^8, which
    needs k < K(p) and so F < K(p) / 2^29 (rounded up).  A kernel computes the bound once per
    call; a group whose 16 filter bits fail it costs an eighth of a Philox block and nothing
    else (no roots, no further blocks).  At p = 1 % that is about 92 % of all bytes.

The arithmetic is chosen to give the same u on every platform: (1 - U)^(1/8) is three correctly
rounded square roots, M is computed as U / ((1 + s)(1 + s^2)(1 + s^4)) with s = (1 - U)^(1/8)
(exact algebra, keeps M accurate and > 0 when U is tiny), and the only other operations are
IEEE +, -, *, / in double precision, never contracted into fused multiply-adds (the build passes
-ffp-contract=off; device code uses the explicitly rounded CUDA intrinsics).  Integers enter
through exact int32-to-double conversions (MinimumSource, Uint32ToDouble), which every vector
instruction set has, so the CPU kernels can compute many groups in vector registers.  u is
clamped to at most 1, so u lies in (0, 1]: p = 0 never sets a bit and p = 1 sets every bit.

The CPU kernels compute the same Philox blocks for many groups at once (structure of arrays,
vectorized; the lane loops are compiled for AVX-512, AVX2 and the baseline and chosen when the
library loads; bit_errors_kernels.cc); tests/test_ops.py checks every op bit for bit against an
independent numpy implementation of this construction.

The fast-path threshold is widened by a tiny margin (see MakeRateThreshold) so that rounding can
never drop a group that does hold a faulty bit; the margin only sends a few more groups down the
exact path, it never changes a result.
*/
#ifndef TFBET_CUSTOM_OPS_BIT_ERRORS_H_
#define TFBET_CUSTOM_OPS_BIT_ERRORS_H_

#include <cstdint>

#include "tensorflow/core/lib/random/philox_random.h"

namespace tensorflow {
class OpKernelContext;
}  // namespace tensorflow

namespace tfbet {

using PhiloxRandom = ::tensorflow::random::PhiloxRandom;

// Exactly rounded double arithmetic that the compiler may not fuse (CUDA contracts a * b + c into
// an FMA by default, which would change the last bit of u between CPU and GPU).
PHILOX_DEVICE_INLINE double AddRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

PHILOX_DEVICE_INLINE double SubRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}

PHILOX_DEVICE_INLINE double MulRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

PHILOX_DEVICE_INLINE double DivRn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

PHILOX_DEVICE_INLINE double SqrtRn(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return sqrt(a);
#endif
}

// 2^-45 and 2^-32, exact.
constexpr double kTwoPowMinus45 = 1.0 / 35184372088832.0;
constexpr double kTwoPowMinus32 = 1.0 / 4294967296.0;

// Bits of k = F 2^29 + (w >> 3) that come from block (g, 1): U has 16 + 29 = 45 bits.
constexpr int kLowMinimumBits = 29;

// The Philox block (n, substream) under key `seed`.
PHILOX_DEVICE_INLINE PhiloxRandom::ResultType CounterBlock(uint64_t seed, uint64_t n,
                                                           uint32_t substream) {
  PhiloxRandom::ResultType counter;
  counter[0] = static_cast<uint32_t>(n);
  counter[1] = static_cast<uint32_t>(n >> 32);
  counter[2] = substream;
  counter[3] = 0;
  PhiloxRandom::Key key;
  key[0] = static_cast<uint32_t>(seed);
  key[1] = static_cast<uint32_t>(seed >> 32);
  PhiloxRandom generator(counter, key);
  return generator();
}

// The 16 filter bits F of group `group` out of its filter block (group / 8, 0).
PHILOX_DEVICE_INLINE uint32_t FilterBitsOf(const PhiloxRandom::ResultType& filter_block,
                                           uint64_t group) {
  const uint32_t word = filter_block[(group >> 1) & 3];
  return (group & 1) ? (word >> 16) : (word & 0xFFFFu);
}

PHILOX_DEVICE_INLINE uint32_t GroupFilterBits(uint64_t seed, uint64_t group) {
  return FilterBitsOf(CounterBlock(seed, group >> 3, 0), group);
}

// Position (0..7) of the group minimum, from the low three bits of word 0 of block (g, 1).
PHILOX_DEVICE_INLINE int MinimumPosition(uint32_t word) { return static_cast<int>(word & 7u); }

// A uint32 as a double, exactly, through the signed conversion that every vector instruction
// set has: (x - 2^31) as an int32, plus 2^31.
PHILOX_DEVICE_INLINE double Uint32ToDouble(uint32_t x) {
  return AddRn(static_cast<double>(static_cast<int32_t>(x ^ 0x80000000u)), 2147483648.0);
}

// U = (k + 1) * 2^-45 in (0, 1] for the 45-bit k = F 2^29 + (w >> 3).  k + 1 is formed as
// F 2^29 + ((w >> 3) + 1) from two exact int32 conversions (their sum < 2^46 is exact too), the
// same double as converting k + 1 itself, but vectorizable without 64-bit conversions.
PHILOX_DEVICE_INLINE double MinimumSource(uint32_t filter_bits, uint32_t word) {
  const double high = MulRn(static_cast<double>(static_cast<int32_t>(filter_bits)),
                            static_cast<double>(1u << kLowMinimumBits));
  const double low = static_cast<double>(static_cast<int32_t>((word >> 3) + 1u));
  return MulRn(AddRn(high, low), kTwoPowMinus45);
}

// M = 1 - (1 - U)^(1/8), computed without cancellation.
PHILOX_DEVICE_INLINE double GroupMinimum(double u) {
  const double s = SqrtRn(SqrtRn(SqrtRn(SubRn(1.0, u))));  // 1 - u is exact
  const double s2 = MulRn(s, s);
  const double s4 = MulRn(s2, s2);
  // 1 - s = (1 - s^8) / ((1 + s)(1 + s^2)(1 + s^4)) and 1 - s^8 = u.
  const double denominator = MulRn(MulRn(AddRn(1.0, s), AddRn(1.0, s2)), AddRn(1.0, s4));
  return DivRn(u, denominator);
}

// u = min(1, M + (1 - M) * V) with V = (w + 1) * 2^-32 (w + 1 <= 2^32 is exact in a double).
PHILOX_DEVICE_INLINE double AboveMinimum(double minimum, uint32_t word) {
  const double v = MulRn(AddRn(Uint32ToDouble(word), 1.0), kTwoPowMinus32);
  const double u = AddRn(minimum, MulRn(SubRn(1.0, minimum), v));
  return u < 1.0 ? u : 1.0;
}

// The eight uniforms u(seed, 8 * group + b), b = 0..7, given the group's filter bits.
PHILOX_DEVICE_INLINE void GroupUniformsFromFilter(uint64_t seed, uint64_t group,
                                                  uint32_t filter_bits, double* uniforms) {
  const PhiloxRandom::ResultType second = CounterBlock(seed, group, 1);
  const PhiloxRandom::ResultType third = CounterBlock(seed, group, 2);
  const double minimum = GroupMinimum(MinimumSource(filter_bits, second[0]));
  const int position = MinimumPosition(second[0]);
  const uint32_t words[7] = {second[1], second[2], second[3], third[0],
                             third[1],  third[2],  third[3]};
  for (int b = 0; b < 8; ++b) {
    uniforms[b] = b == position ? minimum : AboveMinimum(minimum, words[b < position ? b : b - 1]);
  }
}

// The eight uniforms u(seed, 8 * group + b), b = 0..7.
PHILOX_DEVICE_INLINE void GroupUniforms(uint64_t seed, uint64_t group, double* uniforms) {
  GroupUniformsFromFilter(seed, group, GroupFilterBits(seed, group), uniforms);
}

// A rate p with its fast-path bounds on the integer k behind U and on the filter bits F.
struct RateThreshold {
  double rate;
  // A group can hold a bit with u <= rate only if k < keep_below, hence only if
  // F < filter_below.
  uint64_t keep_below;
  uint32_t filter_below;
};

// Host-side: t(p) = 1 - (1 - p)^8 widened by a margin that covers every rounding error.
// The computed t is within 2e-15 of the exact t, and the computed M is within a relative 1e-14
// of the exact M (so M <= p implies U <= t(p) + 1e-13 * p).  The margin below is ten times that.
inline RateThreshold MakeRateThreshold(double rate) {
  RateThreshold threshold;
  threshold.rate = rate;
  const double q = 1.0 - rate;
  const double q2 = q * q;
  const double q4 = q2 * q2;
  const double t = 1.0 - q4 * q4;
  const double keep = t + 2e-14 + 1e-12 * rate;
  if (keep >= 1.0) {
    threshold.keep_below = uint64_t{1} << 45;  // every k in [0, 2^45) passes
  } else {
    // U = (k + 1) 2^-45 <= keep  <=>  k + 1 <= floor(keep 2^45)  <=>  k < floor(keep 2^45).
    threshold.keep_below = static_cast<uint64_t>(keep * 35184372088832.0);
  }
  // k < keep_below  =>  F = k >> 29 <= (keep_below - 1) >> 29.
  threshold.filter_below =
      threshold.keep_below == 0
          ? 0u
          : static_cast<uint32_t>(((threshold.keep_below - 1) >> kLowMinimumBits) + 1);
  return threshold;
}

// The flip mask byte of a group from its eight uniforms: bit b set iff u_b <= rate, restricted
// to the low precision bits (precision_mask).
PHILOX_DEVICE_INLINE uint8_t FlipMaskByteExact(uint64_t seed, uint64_t group,
                                               uint32_t filter_bits, double rate,
                                               uint8_t precision_mask) {
  double uniforms[8];
  GroupUniformsFromFilter(seed, group, filter_bits, uniforms);
  uint8_t mask = 0;
  for (int b = 0; b < 8; ++b) {
    mask |= static_cast<uint8_t>((uniforms[b] <= rate ? 1u : 0u) << b);
  }
  return mask & precision_mask;
}

// The byte of the symmetric flip mask for group `group`, given its filter bits.
PHILOX_DEVICE_INLINE uint8_t FlipMaskByte(uint64_t seed, uint64_t group, uint32_t filter_bits,
                                          const RateThreshold& threshold,
                                          uint8_t precision_mask) {
  if (filter_bits >= threshold.filter_below) return 0;
  return FlipMaskByteExact(seed, group, filter_bits, threshold.rate, precision_mask);
}

// The set and clear bytes of the asymmetric masks for a byte-aligned group: set iff u <= rate
// 0-to-1, clear iff u > 1 - rate 1-to-0 (clear_above); set wins where both hold, which only
// happens when rounding lets the two rates add up to slightly more than 1.
PHILOX_DEVICE_INLINE void AsymmetricMaskBytes(uint64_t seed, uint64_t group, uint32_t filter_bits,
                                              const RateThreshold& set_threshold,
                                              bool any_clear, double clear_above,
                                              uint8_t precision_mask, uint8_t* set_byte,
                                              uint8_t* clear_byte) {
  *set_byte = 0;
  *clear_byte = 0;
  if (!any_clear && filter_bits >= set_threshold.filter_below) return;
  double uniforms[8];
  GroupUniformsFromFilter(seed, group, filter_bits, uniforms);
  uint8_t set = 0;
  uint8_t clear = 0;
  for (int b = 0; b < 8; ++b) {
    const uint8_t bit = static_cast<uint8_t>(1u << b);
    if (uniforms[b] <= set_threshold.rate) {
      set |= bit;
    } else if (any_clear && uniforms[b] > clear_above) {
      clear |= bit;
    }
  }
  *set_byte = set & precision_mask;
  *clear_byte = clear & precision_mask;
}

// Profiled masks for element `element` (not necessarily byte aligned): its bit b has address
// a = offset + 8 * element + b and probability cell (a mod cells) of the row-major maps.
// `cache_group` / `cache` remember the last group whose uniforms were computed, so a sequential
// sweep computes each group once; they only save work, the result never depends on them.
template <typename MapT>
PHILOX_DEVICE_INLINE void ProfiledMaskBytes(uint64_t seed, uint64_t offset, uint64_t element,
                                            const MapT* p0t1, const MapT* p1t0, uint64_t cells,
                                            int precision, int64_t* cache_group, double* cache,
                                            uint8_t* set_byte, uint8_t* clear_byte) {
  const uint64_t base = offset + 8 * element;
  uint64_t cell = base % cells;
  uint8_t set = 0;
  uint8_t clear = 0;
  for (int b = 0; b < precision; ++b) {
    const double to_one = static_cast<double>(p0t1[cell]);
    const double to_zero = static_cast<double>(p1t0[cell]);
    if (to_one > 0.0 || to_zero > 0.0) {
      const uint64_t address = base + b;
      const int64_t group = static_cast<int64_t>(address >> 3);
      if (group != *cache_group) {
        GroupUniforms(seed, static_cast<uint64_t>(group), cache);
        *cache_group = group;
      }
      const double u = cache[address & 7];
      const uint8_t bit = static_cast<uint8_t>(1u << b);
      if (u <= to_one) {
        set |= bit;
      } else if (u > SubRn(1.0, to_zero)) {
        clear |= bit;
      }
    }
    if (++cell == cells) cell = 0;
  }
  *set_byte = set;
  *clear_byte = clear;
}

// ((v ^ flip) | set) & ~clear.
PHILOX_DEVICE_INLINE uint8_t ApplyBitErrorsByte(uint8_t value, uint8_t flip, uint8_t set,
                                                uint8_t clear) {
  return static_cast<uint8_t>(((value ^ flip) | set) & static_cast<uint8_t>(~clear));
}

namespace functor {

// Device functors, declared here so that the kernels and the CUDA file agree on them.  The CPU
// versions live in bit_errors_kernels.cc, the GPU versions in bit_errors_kernels.cu.cc.  They take
// the kernel context for its device (the CPU thread pool or the GPU stream).
template <typename Device>
struct RandomFlipMaskFunctor {
  void operator()(::tensorflow::OpKernelContext* context, uint64_t seed, uint64_t first_group,
                  const RateThreshold& threshold, uint8_t precision_mask, int64_t size,
                  uint8_t* mask);
};

template <typename Device>
struct AsymmetricMasksFunctor {
  void operator()(::tensorflow::OpKernelContext* context, uint64_t seed, uint64_t first_group,
                  const RateThreshold& set_threshold, bool any_clear, double clear_above,
                  uint8_t precision_mask, int64_t size, uint8_t* set_mask, uint8_t* clear_mask);
};

template <typename Device>
struct ApplyBitErrorsFunctor {
  void operator()(::tensorflow::OpKernelContext* context, const uint8_t* values,
                  const uint8_t* flip, const uint8_t* set, const uint8_t* clear, int64_t size,
                  uint8_t* output);
};

}  // namespace functor
}  // namespace tfbet

#endif  // TFBET_CUSTOM_OPS_BIT_ERRORS_H_
