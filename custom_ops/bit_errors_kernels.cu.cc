/* GPU functors of the tfbet bit error ops: the math of bit_errors.h, one thread per filter block
(flip masks) or per element (asymmetric masks, application).

Only compiled when TFBET_BUILD_CUDA=1 (setup.py) with nvcc; the CPU build never needs this file.
The uniforms are the same bits as on the CPU: bit_errors.h uses correctly rounded square roots and
explicitly rounded (never fused) double arithmetic on the device, and TensorFlow's PhiloxRandom.
The profiled masks have no GPU kernel (their maps are validated value by value on the host);
TensorFlow places that op on the CPU.
*/
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bit_errors.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace tfbet {
namespace {

using GPUDevice = Eigen::GpuDevice;
using ::tensorflow::OpKernelContext;

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 65536;  // a grid-stride loop covers any size

int BlocksFor(int64_t size) {
  return static_cast<int>(std::min<int64_t>((size + kThreadsPerBlock - 1) / kThreadsPerBlock,
                                            kMaxBlocks));
}

// Reports a failed launch through the kernel context.
void CheckLaunch(OpKernelContext* context, const char* kernel) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess) {
    context->SetStatus(::absl::InternalError(
        ::absl::StrCat("tfbet: launching ", kernel, " failed: ", cudaGetErrorString(error))));
  }
}

// One thread per filter block: the eight groups 8h .. 8h+7 share block (h, 0) (bit_errors.h),
// so it is drawn once for them.  Thread t serves h = first_group / 8 + t; groups outside
// [first_group, first_group + size) are skipped.
__global__ void RandomFlipMaskKernel(uint64_t seed, uint64_t first_group,
                                     RateThreshold threshold, uint8_t precision_mask,
                                     int64_t size, uint8_t* mask) {
  const uint64_t first_block = first_group >> 3;
  const uint64_t last = first_group + static_cast<uint64_t>(size);
  const int64_t blocks = static_cast<int64_t>(((last - 1) >> 3) - first_block + 1);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < blocks;
       t += stride) {
    const uint64_t block = first_block + static_cast<uint64_t>(t);
    const PhiloxRandom::ResultType filter = CounterBlock(seed, block, 0);
    for (int c = 0; c < 8; ++c) {
      const uint64_t group = 8 * block + c;
      if (group < first_group || group >= last) continue;
      mask[group - first_group] =
          FlipMaskByte(seed, group, FilterBitsOf(filter, group), threshold, precision_mask);
    }
  }
}

__global__ void AsymmetricMasksKernel(uint64_t seed, uint64_t first_group,
                                      RateThreshold set_threshold, bool any_clear,
                                      double clear_above, uint8_t precision_mask, int64_t size,
                                      uint8_t* set_mask, uint8_t* clear_mask) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < size;
       i += stride) {
    const uint64_t group = first_group + static_cast<uint64_t>(i);
    AsymmetricMaskBytes(seed, group, GroupFilterBits(seed, group), set_threshold, any_clear,
                        clear_above, precision_mask, &set_mask[i], &clear_mask[i]);
  }
}

__global__ void ApplyBitErrorsKernel(const uint8_t* values, const uint8_t* flip,
                                     const uint8_t* set, const uint8_t* clear, int64_t size,
                                     uint8_t* output) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < size;
       i += stride) {
    output[i] = ApplyBitErrorsByte(values[i], flip[i], set[i], clear[i]);
  }
}

}  // namespace

namespace functor {

// Definitions of the functors declared in bit_errors.h, instantiated for the GPU only.
template <typename Device>
void RandomFlipMaskFunctor<Device>::operator()(OpKernelContext* context, uint64_t seed,
                                               uint64_t first_group,
                                               const RateThreshold& threshold,
                                               uint8_t precision_mask, int64_t size,
                                               uint8_t* mask) {
  const GPUDevice& device = context->eigen_device<GPUDevice>();
  const int64_t filter_blocks =
      static_cast<int64_t>(((first_group + size - 1) >> 3) - (first_group >> 3) + 1);
  RandomFlipMaskKernel<<<BlocksFor(filter_blocks), kThreadsPerBlock, 0, device.stream()>>>(
      seed, first_group, threshold, precision_mask, size, mask);
  CheckLaunch(context, "RandomFlipMaskKernel");
}

template <typename Device>
void AsymmetricMasksFunctor<Device>::operator()(OpKernelContext* context, uint64_t seed,
                                                uint64_t first_group,
                                                const RateThreshold& set_threshold,
                                                bool any_clear, double clear_above,
                                                uint8_t precision_mask, int64_t size,
                                                uint8_t* set_mask, uint8_t* clear_mask) {
  const GPUDevice& device = context->eigen_device<GPUDevice>();
  AsymmetricMasksKernel<<<BlocksFor(size), kThreadsPerBlock, 0, device.stream()>>>(
      seed, first_group, set_threshold, any_clear, clear_above, precision_mask, size, set_mask,
      clear_mask);
  CheckLaunch(context, "AsymmetricMasksKernel");
}

template <typename Device>
void ApplyBitErrorsFunctor<Device>::operator()(OpKernelContext* context, const uint8_t* values,
                                               const uint8_t* flip, const uint8_t* set,
                                               const uint8_t* clear, int64_t size,
                                               uint8_t* output) {
  const GPUDevice& device = context->eigen_device<GPUDevice>();
  ApplyBitErrorsKernel<<<BlocksFor(size), kThreadsPerBlock, 0, device.stream()>>>(
      values, flip, set, clear, size, output);
  CheckLaunch(context, "ApplyBitErrorsKernel");
}

template struct RandomFlipMaskFunctor<GPUDevice>;
template struct AsymmetricMasksFunctor<GPUDevice>;
template struct ApplyBitErrorsFunctor<GPUDevice>;

}  // namespace functor
}  // namespace tfbet

#endif  // GOOGLE_CUDA
