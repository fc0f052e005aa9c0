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
// added to global memory once per block. Where a warp's 32 observations share their pose blocks,
// the warp sums each entry with shuffles first (one atomic, not 32 on the same address); the point
// rows (Hpp, gp, Hcp) go straight to global memory, where different points rarely collide.

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

// Per-lane addition of a pose entry: atomic on the device, plain on the host.
struct AddEach {
  __host__ __device__ void operator()(double* target, double value) const { accumulate(target, value); }
};

// One observation's share of H and g. H_acc / g_acc: the (nc,nc) / (nc,) pose accumulators; `block`: the
// observation's pose blocks (< 0 = fixed). An inactive observation (`active` false: a lane with nothing to
// add, which must still take part in a warp sum) adds zeros. `add_pose` adds each pose entry (AddEach,
// or a warp sum where the warp's observations share `block`); point rows are added per observation.
template <class AddPose>
__host__ __device__ inline void add_observation(
    int64_t m, bool active, const double* __restrict__ r, const double* __restrict__ w, const int64_t* block,
    const double* __restrict__ J, const int64_t* __restrict__ point_index, const double* __restrict__ jp, int B,
    int64_t nc, int64_t num_points, double* H_acc, double* g_acc, double* Hpp, double* gp, double* Hcp,
    AddPose add_pose) {
  const int64_t mm = active ? m : 0;  // a valid row to read; its values are masked by `active`
  const double wm = active ? w[mm] : 0.0;
  const double r0 = r[2 * mm], r1 = r[2 * mm + 1];
  const int64_t p = active ? point_index[mm] : -1;
  const double q0 = p >= 0 ? jp[2 * mm] : 0.0, q1 = p >= 0 ? jp[2 * mm + 1] : 0.0;
  for (int b1 = 0; b1 < B; ++b1) {
    if (block[b1] < 0) continue;
    const double* J1 = J + (mm * B + b1) * 2 * kPoseDof;  // rows: J1[i] (x residual), J1[6 + i] (y)
    const int64_t c1 = block[b1] * kPoseDof;
    for (int i = 0; i < kPoseDof; ++i) {
      const double a0 = wm * J1[i], a1 = wm * J1[kPoseDof + i];
      add_pose(&g_acc[c1 + i], -(a0 * r0 + a1 * r1));
      for (int b2 = 0; b2 < B; ++b2) {
        if (block[b2] < 0) continue;
        const double* J2 = J + (mm * B + b2) * 2 * kPoseDof;
        double* row = H_acc + (c1 + i) * nc + block[b2] * kPoseDof;
        for (int j = 0; j < kPoseDof; ++j) add_pose(&row[j], a0 * J2[j] + a1 * J2[kPoseDof + j]);
      }
      if (p >= 0) accumulate(&Hcp[(c1 + i) * num_points + p], a0 * q0 + a1 * q1);
    }
  }
  if (p >= 0) {
    accumulate(&Hpp[p], wm * (q0 * q0 + q1 * q1));
    accumulate(&gp[p], -wm * (q0 * r0 + q1 * r1));
  }
}

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kMaxWarpGroups = 4;  // each round costs one warp sum per pose entry

// A pose entry summed over the warp with shuffles and added once by lane 0, instead of one atomic per
// lane on the same address. Every lane of the warp must call it with the same target (the lanes of a
// group share their pose blocks, the others add zeros), so the loops around it stay warp-uniform.
struct AddWarpSum {
  __device__ void operator()(double* target, double value) const {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(kFullWarp, value, offset);
    if ((threadIdx.x & 31) == 0) atomicAdd(target, value);
  }
};

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
  // The loop bound is the same for the whole warp (base, not m), so its shuffles see every lane.
  for (int64_t base = blockIdx.x * (int64_t)blockDim.x; base < M; base += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = base + threadIdx.x;
    const bool active = m < M;
    int64_t mine[kMaxBlocksPerObservation];
    for (int b = 0; b < B; ++b) mine[b] = active ? pose_index[m * B + b] : -1;
    // Up to kMaxWarpGroups rounds: the lowest pending lane's pose blocks pick the lanes that share
    // them, and those are summed together (the tracker lists observations frame by frame, so most
    // warps are one or two groups); what remains after that (a warp of mixed observations) takes
    // the per-lane path.
    unsigned pending = __ballot_sync(kFullWarp, active);
    for (int round = 0; round < kMaxWarpGroups && pending != 0u; ++round) {
      const int leader = __ffs(pending) - 1;
      bool in_group = (pending >> (threadIdx.x & 31)) & 1u;
      int64_t group_block[kMaxBlocksPerObservation];
      for (int b = 0; b < B; ++b) {
        group_block[b] = __shfl_sync(kFullWarp, mine[b], leader);
        in_group = in_group && mine[b] == group_block[b];
      }
      pending &= ~__ballot_sync(kFullWarp, in_group);
      add_observation(m, in_group, r, w, group_block, J, point_index, jp, B, nc, num_points, H_acc, g_acc, Hpp, gp,
                      Hcp, AddWarpSum{});
    }
    if ((pending >> (threadIdx.x & 31)) & 1u)
      add_observation(m, true, r, w, mine, J, point_index, jp, B, nc, num_points, H_acc, g_acc, Hpp, gp, Hcp,
                      AddEach{});
  }
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
  // One observation per thread up to 128 blocks: the warps' pose sums are cheap, and each block's
  // one flush of its shared pose block is small next to the observations.
  int64_t grid = (num_observations + kBaThreads - 1) / kBaThreads;
  grid = grid < 1 ? 1 : (grid > 128 ? 128 : grid);
  ba_normal_equations_kernel<<<(unsigned)grid, kBaThreads, use_shared ? shared_bytes : 0, stream>>>(
      residuals, weights, pose_index, pose_jacobians, point_index, point_jacobians, num_observations,
      (int)blocks_per_observation, nc, num_points, use_shared, Hcc, gc, Hpp, gp, Hcp);
  return cudaGetLastError();
}
