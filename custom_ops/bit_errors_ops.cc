/* Registration of the tfbet bit error ops: signatures, shape functions and documentation.

The kernels are in bit_errors_kernels.cc (CPU) and bit_errors_kernels.cu.cc (GPU); the uniform
construction they share is documented in bit_errors.h.
*/
#include <string>

#include "absl/status/status.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tfbet {
namespace {

using Status = ::absl::Status;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// The listed inputs (seed, rates, precision, offset) must be scalars.
Status CheckScalars(InferenceContext* c, std::initializer_list<int> inputs) {
  ShapeHandle unused;
  for (int input : inputs) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(input), 0, &unused));
  }
  return ::absl::OkStatus();
}

// Output shape = the value of the 1-D `shape` input (input 0).
Status MaskShape(InferenceContext* c, ShapeHandle* out) {
  ShapeHandle shape_vector;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &shape_vector));
  return c->MakeShapeFromShapeTensor(0, out);
}

constexpr char kUniformsDoc[] = R"doc(
Every bit address a = offset + 8 * i + b (bit b of element i, bit 0 = least significant) owns a
uniform u(seed, a) in (0, 1] that does not depend on the rate or the precision, so masks of one
seed are exactly nested across rates and any slice can be computed alone from its offset.

The eight uniforms of group g = a // 8 are iid U(0, 1], built from Philox4x32-10 keyed by the
64-bit seed; block (n, s) has the counter (lo32(n), hi32(n), s, 0).  Block (g // 8, 0) gives 16
filter bits F to each of its eight groups; block (g, 1) word 0 = w gives the 45-bit uniform
U = (F 2^29 + (w >> 3) + 1) 2^-45 and the position j = w mod 8 of the group minimum; the minimum
is M = 1 - (1 - U)^(1/8) and u_j = M; the other bits are u_b = M + (1 - M) V_b with V_b iid
32-bit uniforms in (0, 1] from words 1..3 of block (g, 1) and 0..3 of block (g, 2), in bit
order.  A group holds a bit with u <= p iff U <= 1 - (1 - p)^8, so at small p most bytes cost an
eighth of a Philox block.
)doc";

}  // namespace

REGISTER_OP("TfbetRandomFlipMask")
    .Input("shape: T")
    .Input("seed: int64")
    .Input("rate: float64")
    .Input("precision: int32")
    .Input("offset: int64")
    .Output("mask: uint8")
    .Attr("T: {int32, int64}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckScalars(c, {1, 2, 3, 4}));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(MaskShape(c, &out));
      c->set_output(0, out);
      return ::absl::OkStatus();
    })
    .Doc(std::string(R"doc(
Symmetric random bit error mask (Sec. 3 of Stutz et al.): XOR it into the quantized weights.

Bit b of output element i is set iff b < precision and u(seed, offset + 8 i + b) <= rate.

shape: 1-D int32/int64, the shape of the mask (one uint8 per quantized weight).
seed: int64 scalar, the chip.  Any value; the same seed gives the same mask.
rate: float64 scalar in [0, 1], the bit error rate p.  0 gives zeros, 1 sets all low bits.
precision: int32 scalar in 1..8, the number m of low bits that hold the code; bits m..7 stay 0.
offset: int64 scalar >= 0, a multiple of 8: the bit address of bit 0 of element 0.
mask: uint8 tensor of the given shape.
)doc") + kUniformsDoc);

REGISTER_OP("TfbetAsymmetricMasks")
    .Input("shape: T")
    .Input("seed: int64")
    .Input("rate_0to1: float64")
    .Input("rate_1to0: float64")
    .Input("precision: int32")
    .Input("offset: int64")
    .Output("set: uint8")
    .Output("clear: uint8")
    .Attr("T: {int32, int64}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckScalars(c, {1, 2, 3, 4, 5}));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(MaskShape(c, &out));
      c->set_output(0, out);
      c->set_output(1, out);
      return ::absl::OkStatus();
    })
    .Doc(std::string(R"doc(
Masks for stuck-at style 0-to-1 and 1-to-0 bit errors (App. C.1 of Stutz et al.).

Bit b of element i (b < precision) is set iff u <= rate_0to1 and cleared iff u > 1 - rate_1to0,
with u = u(seed, offset + 8 i + b), the same uniforms as TfbetRandomFlipMask: with rate_1to0 = 0
the set mask equals the flip mask at rate_0to1.  Apply with ((v | set) & ~clear).

shape: 1-D int32/int64, the shape of the masks.
seed: int64 scalar, the chip.
rate_0to1: float64 scalar in [0, 1], probability that a bit reads 1 whatever was written.
rate_1to0: float64 scalar in [0, 1], probability that a bit reads 0; rate_0to1 + rate_1to0 <= 1.
precision: int32 scalar in 1..8.
offset: int64 scalar >= 0, a multiple of 8.
set: uint8 mask of bits forced to 1.
clear: uint8 mask of bits forced to 0 (never overlapping set).
)doc") + kUniformsDoc);

REGISTER_OP("TfbetProfiledMasks")
    .Input("shape: T")
    .Input("seed: int64")
    .Input("p0t1: Tmap")
    .Input("p1t0: Tmap")
    .Input("precision: int32")
    .Input("offset: int64")
    .Output("set: uint8")
    .Output("clear: uint8")
    .Attr("T: {int32, int64}")
    .Attr("Tmap: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(CheckScalars(c, {1, 4, 5}));
      ShapeHandle p0t1;
      ShapeHandle p1t0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &p0t1));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &p1t0));
      ShapeHandle merged;
      TF_RETURN_IF_ERROR(c->Merge(p0t1, p1t0, &merged));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(MaskShape(c, &out));
      c->set_output(0, out);
      c->set_output(1, out);
      return ::absl::OkStatus();
    })
    .Doc(std::string(R"doc(
Masks for a profiled chip (App. C.1 of Stutz et al.): per-bit-cell flip probabilities.

The weights are laid out linearly over the rows x cols bit-cell array, wrapping around: bit
address a = offset + 8 i + b uses cell c = a mod (rows * cols) in row-major order.  Bit b of
element i (b < precision) is set iff u(seed, a) <= p0t1[c] and cleared iff u(seed, a) >
1 - p1t0[c].  Cells with probability 1 (persistent faults) are always faulty.  The offset need not
be a multiple of 8, so evaluation can average over arbitrary placements.

shape: 1-D int32/int64, the shape of the masks.
seed: int64 scalar, the draw of the transient errors.
p0t1: 2-D float32/float64 rows x cols, nonempty, values in [0, 1]: 0-to-1 flip probabilities.
p1t0: same shape as p0t1, values in [0, 1], p0t1 + p1t0 <= 1 (+1e-6) per cell: 1-to-0 flips.
precision: int32 scalar in 1..8.
offset: int64 scalar >= 0, the bit address of bit 0 of element 0.
set: uint8 mask of bits forced to 1.
clear: uint8 mask of bits forced to 0 (where rounding makes both hold, set wins).
)doc") + kUniformsDoc);

REGISTER_OP("TfbetApplyBitErrors")
    .Input("values: uint8")
    .Input("flip: uint8")
    .Input("set: uint8")
    .Input("clear: uint8")
    .Output("perturbed: uint8")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle merged = c->input(0);
      for (int input = 1; input < 4; ++input) {
        TF_RETURN_IF_ERROR(c->Merge(merged, c->input(input), &merged));
      }
      c->set_output(0, merged);
      return ::absl::OkStatus();
    })
    .Doc(R"doc(
Applies bit error masks to quantized weights: perturbed = ((values ^ flip) | set) & ~clear.

All-zero masks return the values unchanged, bit for bit.

values: uint8 quantized weights, one per byte.
flip: uint8, same shape: bits to invert (random symmetric errors).
set: uint8, same shape: bits forced to 1 (0-to-1 errors).
clear: uint8, same shape: bits forced to 0 (1-to-0 errors).
perturbed: uint8, same shape.
)doc");

}  // namespace tfbet
