// Bundle-adjustment normal equations: per-observation residuals and Jacobian blocks
// reduced into the Gauss-Newton Hessian and gradient, in one kernel.
//
// Contract (services/kernels/reference.py::ba_normal_equations is the same maths in torch):
//   r (M,2), w (M,), pose_index (M,B) int64 (< 0 = fixed), J (M,B,2,6), point_index (M,) int64
//   (< 0 = none), jp (M,2)  ->  Hcc (6P,6P), gc (6P,), Hpp (N,), gp (N,), Hcp (6P,N), g = -J^T W r.
// Self-contained CUDA C++ (no torch headers): the torch binding is bindings.cpp.
//
// Each thread takes observations (grid-stride); the pose block of H and g, small for a sliding
// window (6P <= 72 fits 48 KB of shared memory), is accumulated in shared memory by every block and
// added to global memory once per block; the point rows (Hpp, gp, Hcp) go straight to global
// memory, where different points rarely collide.

#include <cuda_runtime.h>
#include <cstdint>

namespace {

constexpr int kPoseDof = 6;
constexpr int kMaxBlocksPerObservation = 4;  // observing camera, anchor camera, intrinsics, one spare
constexpr int kBaThreads = 256;
constexpr int kMaxSharedBytes = 48 * 1024;

// Atomic on the device (threads share the accumulators), plain on the host (the CPU check of
// tests/kernels runs this same arithmetic through cuda_kernels/host_check.cu).
__host__ __device__ inline void accumulate(double* target, double value) {
#ifdef __CUDA_ARCH__
  atomicAdd(target, value);
#else
  *target += value;
#endif
}

// One observation's share of H and g. H_acc / g_acc: the (nc,nc) / (nc,) pose accumulators.
__host__ __device__ inline void add_observation(
    int64_t m, const double* __restrict__ r, const double* __restrict__ w, const int64_t* __restrict__ pose_index,
    const double* __restrict__ J, const int64_t* __restrict__ point_index, const double* __restrict__ jp, int B,
    int64_t nc, int64_t num_points, double* H_acc, double* g_acc, double* Hpp, double* gp, double* Hcp) {
  const double wm = w[m];
  const double r0 = r[2 * m], r1 = r[2 * m + 1];
  const int64_t p = point_index[m];
  const double q0 = p >= 0 ? jp[2 * m] : 0.0, q1 = p >= 0 ? jp[2 * m + 1] : 0.0;
  int64_t block[kMaxBlocksPerObservation];
  for (int b = 0; b < B; ++b) block[b] = pose_index[m * B + b];

  for (int b1 = 0; b1 < B; ++b1) {
    if (block[b1] < 0) continue;
    const double* J1 = J + (m * B + b1) * 2 * kPoseDof;  // rows: J1[i] (x residual), J1[6 + i] (y)
    const int64_t c1 = block[b1] * kPoseDof;
    for (int i = 0; i < kPoseDof; ++i) {
      const double a0 = wm * J1[i], a1 = wm * J1[kPoseDof + i];
      accumulate(&g_acc[c1 + i], -(a0 * r0 + a1 * r1));
      for (int b2 = 0; b2 < B; ++b2) {
        if (block[b2] < 0) continue;
        const double* J2 = J + (m * B + b2) * 2 * kPoseDof;
        double* row = H_acc + (c1 + i) * nc + block[b2] * kPoseDof;
        for (int j = 0; j < kPoseDof; ++j) accumulate(&row[j], a0 * J2[j] + a1 * J2[kPoseDof + j]);
      }
      if (p >= 0) accumulate(&Hcp[(c1 + i) * num_points + p], a0 * q0 + a1 * q1);
    }
  }
  if (p >= 0) {
    accumulate(&Hpp[p], wm * (q0 * q0 + q1 * q1));
    accumulate(&gp[p], -wm * (q0 * r0 + q1 * r1));
  }
}

__global__ void ba_normal_equations_kernel(
    const double* __restrict__ r, const double* __restrict__ w, const int64_t* __restrict__ pose_index,
    const double* __restrict__ J, const int64_t* __restrict__ point_index, const double* __restrict__ jp,
    int64_t M, int B, int64_t nc, int64_t num_points, bool shared_pose_block,
    double* __restrict__ H, double* __restrict__ g, double* __restrict__ Hpp, double* __restrict__ gp,
    double* __restrict__ Hcp) {
  extern __shared__ double shared[];
  double* H_acc = H;
  double* g_acc = g;
  if (shared_pose_block) {
    H_acc = shared;
    g_acc = shared + nc * nc;
    for (int64_t k = threadIdx.x; k < nc * nc + nc; k += blockDim.x) shared[k] = 0.0;
    __syncthreads();
  }
  for (int64_t m = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; m < M; m += (int64_t)gridDim.x * blockDim.x)
    add_observation(m, r, w, pose_index, J, point_index, jp, B, nc, num_points, H_acc, g_acc, Hpp, gp, Hcp);
  if (shared_pose_block) {
    __syncthreads();
    for (int64_t k = threadIdx.x; k < nc * nc; k += blockDim.x)
      if (H_acc[k] != 0.0) atomicAdd(&H[k], H_acc[k]);
    for (int64_t k = threadIdx.x; k < nc; k += blockDim.x)
      if (g_acc[k] != 0.0) atomicAdd(&g[k], g_acc[k]);
  }
}

}  // namespace

// Outputs need not be zeroed: the launcher clears them on the stream first.
// Returns cudaErrorInvalidValue for more than kMaxBlocksPerObservation pose blocks per observation.
extern "C" cudaError_t spatialvid_ba_normal_equations(
    const double* residuals, const double* weights, const int64_t* pose_index, const double* pose_jacobians,
    const int64_t* point_index, const double* point_jacobians, int64_t num_observations, int64_t blocks_per_observation,
    int64_t num_poses, int64_t num_points, double* Hcc, double* gc, double* Hpp, double* gp, double* Hcp,
    cudaStream_t stream) {
  if (blocks_per_observation < 0 || blocks_per_observation > kMaxBlocksPerObservation) return cudaErrorInvalidValue;
  const int64_t nc = num_poses * kPoseDof;
  cudaError_t err;
  if (nc > 0) {
    if ((err = cudaMemsetAsync(Hcc, 0, sizeof(double) * nc * nc, stream)) != cudaSuccess) return err;
    if ((err = cudaMemsetAsync(gc, 0, sizeof(double) * nc, stream)) != cudaSuccess) return err;
  }
  if (num_points > 0) {
    if ((err = cudaMemsetAsync(Hpp, 0, sizeof(double) * num_points, stream)) != cudaSuccess) return err;
    if ((err = cudaMemsetAsync(gp, 0, sizeof(double) * num_points, stream)) != cudaSuccess) return err;
    if (nc > 0 && (err = cudaMemsetAsync(Hcp, 0, sizeof(double) * nc * num_points, stream)) != cudaSuccess) return err;
  }
  if (num_observations == 0) return cudaSuccess;
  const size_t shared_bytes = sizeof(double) * (nc * nc + nc);
  const bool use_shared = shared_bytes <= kMaxSharedBytes;
  // Few blocks: every block pays one flush of the pose block, and the problems are small.
  int64_t grid = (num_observations + 4 * kBaThreads - 1) / (4 * kBaThreads);
  grid = grid < 1 ? 1 : (grid > 64 ? 64 : grid);
  ba_normal_equations_kernel<<<(unsigned)grid, kBaThreads, use_shared ? shared_bytes : 0, stream>>>(
      residuals, weights, pose_index, pose_jacobians, point_index, point_jacobians, num_observations,
      (int)blocks_per_observation, nc, num_points, use_shared, Hcc, gc, Hpp, gp, Hcp);
  return cudaGetLastError();
}
