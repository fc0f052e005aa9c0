// Per-pixel two-view geometry over dense flow: closed-form inverse depth (multi-view
// triangulation) and the flow residual against the rigid flow (motion evidence).
//
// Contracts: services/kernels/reference.py::flow_triangulate and ::flow_residual_score (the same
// maths in torch). A reference pixel p = (u, v, 1) seen in view k lands at proj(a + w b) with
// a = pixel_maps[k] p (K R K^-1 p, its image at infinite depth) and b = parallax_dirs[k] (K t),
// w = inverse depth. Geometry in double, flow maps and scores in float as in the numpy original.
// Self-contained CUDA C++ (no torch headers): the torch binding is bindings.cpp.

#include <cuda_runtime.h>
#include <cmath>
#include <cstdint>

namespace {

constexpr int kMaxViews = 32;
constexpr int kFlowThreads = 256;

struct ViewGeometry {
  double H[kMaxViews][9];
  double b[kMaxViews][3];
};

__device__ inline void load_views(const double* __restrict__ pixel_maps, const double* __restrict__ dirs, int V,
                                  ViewGeometry& s) {
  for (int k = threadIdx.x; k < V * 9; k += blockDim.x) s.H[k / 9][k % 9] = pixel_maps[k];
  for (int k = threadIdx.x; k < V * 3; k += blockDim.x) s.b[k / 3][k % 3] = dirs[k];
  __syncthreads();
}

__host__ __device__ inline void apply(const double* H, double u, double v, double a[3]) {
  a[0] = H[0] * u + H[1] * v + H[2];
  a[1] = H[3] * u + H[4] * v + H[5];
  a[2] = H[6] * u + H[7] * v + H[8];
}

// Pixel i of an (h,w) grid; H (V,9), b (V,3) row-major. Shared by the kernel and the CPU check
// (cuda_kernels/host_check.cu), so the tests here run the kernels' own arithmetic.
__host__ __device__ inline void triangulate_pixel(const double (*H)[9], const double (*b)[3],
                                                  const float* __restrict__ flow, const bool* __restrict__ usable,
                                                  int V, int64_t n, int64_t w, int64_t i, float* inv_depth,
                                                  float* parallax_px, float* residual_px, uint8_t* views_used) {
  const double u = (double)(i % w), v = (double)(i / w);
  double num = 0.0, den = 0.0;
  for (int k = 0; k < V; ++k) {
    double a[3];
    apply(H[k], u, v, a);
    const double q0 = u + (double)flow[(k * n + i) * 2], q1 = v + (double)flow[(k * n + i) * 2 + 1];
    const double m = usable[k * n + i] ? 1.0 : 0.0;
    const double A0 = b[k][0] - q0 * b[k][2], A1 = b[k][1] - q1 * b[k][2];
    const double B0 = q0 * a[2] - a[0], B1 = q1 * a[2] - a[1];
    num += m * (A0 * B0 + A1 * B1);
    den += m * (A0 * A0 + A1 * A1);
  }
  const double inv = den <= 1e-12 ? 0.0 : num / (den > 1e-12 ? den : 1e-12);

  double residual = 0.0, sens2 = 0.0;
  unsigned used = 0;
  for (int k = 0; k < V; ++k) {
    double a[3];
    apply(H[k], u, v, a);
    const double q0 = u + (double)flow[(k * n + i) * 2], q1 = v + (double)flow[(k * n + i) * 2 + 1];
    const bool ok = usable[k * n + i];
    const double x0 = a[0] + inv * b[k][0], x1 = a[1] + inv * b[k][1], x2 = a[2] + inv * b[k][2];
    const double z = fabs(x2) < 1e-9 ? 1e-9 : x2;
    const double p0 = x0 / z, p1 = x1 / z;
    const double r = sqrt((p0 - q0) * (p0 - q0) + (p1 - q1) * (p1 - q1));
    if (ok) residual = fmax(residual, r);
    const double j0 = b[k][0] - p0 * b[k][2], j1 = b[k][1] - p1 * b[k][2];
    const double jac = sqrt(j0 * j0 + j1 * j1) / fabs(z);
    sens2 += (ok ? 1.0 : 0.0) * jac * jac;
    used += ok ? 1u : 0u;
  }
  inv_depth[i] = (float)inv;
  parallax_px[i] = (float)(fabs(inv) * sqrt(sens2));
  residual_px[i] = (float)residual;
  views_used[i] = (uint8_t)used;
}

__host__ __device__ inline void score_pixel(const double (*H)[9], const double (*b)[3],
                                            const float* __restrict__ flow, const float* __restrict__ inv_depth,
                                            const bool* __restrict__ measured, int V, int64_t n, int64_t w, int64_t i,
                                            float noise_px, float parallax_tolerance, float* score) {
  const double u = (double)(i % w), v = (double)(i / w);
  const double inv = (double)inv_depth[i];
  const bool direct = measured[i];
  float best = INFINITY;
  for (int k = 0; k < V; ++k) {
    double a[3];
    apply(H[k], u, v, a);
    const double x0 = a[0] + inv * b[k][0], x1 = a[1] + inv * b[k][1], x2 = a[2] + inv * b[k][2];
    const double z = fabs(x2) < 1e-9 ? 1e-9 : x2;
    // float flow maps, as the numpy original stores rigid and rotation flow in float32
    const float rg0 = (float)(x0 / z - u), rg1 = (float)(x1 / z - v);
    const float ro0 = (float)(a[0] / a[2] - u), ro1 = (float)(a[1] / a[2] - v);
    const float f0 = flow[(k * n + i) * 2], f1 = flow[(k * n + i) * 2 + 1];
    // only views that see the pixel (p + rigid flow inside the image) count
    const float xs = (float)u + rg0, ys = (float)v + rg1;
    if (xs < 0.0f || xs > (float)(w - 1) || ys < 0.0f || ys > (float)(n / w - 1)) continue;
    const float ab0 = rg0 - ro0, ab1 = rg1 - ro1;
    const float parallax = sqrtf(ab0 * ab0 + ab1 * ab1);
    float resid;
    if (direct) {
      resid = sqrtf((f0 - rg0) * (f0 - rg0) + (f1 - rg1) * (f1 - rg1));
    } else {
      float t = ((f0 - ro0) * ab0 + (f1 - ro1) * ab1) / fmaxf(ab0 * ab0 + ab1 * ab1, 1e-9f);
      t = fminf(fmaxf(t, 0.0f), 1.0f);
      const float d0 = f0 - (ro0 + t * ab0), d1 = f1 - (ro1 + t * ab1);
      resid = sqrtf(d0 * d0 + d1 * d1);
    }
    best = fminf(best, resid / (noise_px + parallax_tolerance * parallax));
  }
  score[i] = isinf(best) ? 0.0f : best;  // no view sees the pixel: no evidence
}

__global__ void flow_triangulate_kernel(const double* __restrict__ pixel_maps, const double* __restrict__ dirs,
                                        const float* __restrict__ flow, const bool* __restrict__ usable, int V,
                                        int64_t h, int64_t w, float* __restrict__ inv_depth,
                                        float* __restrict__ parallax_px, float* __restrict__ residual_px,
                                        uint8_t* __restrict__ views_used) {
  __shared__ ViewGeometry s;
  load_views(pixel_maps, dirs, V, s);
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < h * w)
    triangulate_pixel(s.H, s.b, flow, usable, V, h * w, w, i, inv_depth, parallax_px, residual_px, views_used);
}

__global__ void flow_residual_score_kernel(const double* __restrict__ pixel_maps, const double* __restrict__ dirs,
                                           const float* __restrict__ flow, const float* __restrict__ inv_depth,
                                           const bool* __restrict__ measured, int V, int64_t h, int64_t w,
                                           float noise_px, float parallax_tolerance, float* __restrict__ score) {
  __shared__ ViewGeometry s;
  load_views(pixel_maps, dirs, V, s);
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < h * w)
    score_pixel(s.H, s.b, flow, inv_depth, measured, V, h * w, w, i, noise_px, parallax_tolerance, score);
}

unsigned blocks_for(int64_t n) { return (unsigned)((n + kFlowThreads - 1) / kFlowThreads); }

}  // namespace

// flow (V,h,w,2) float32, usable (V,h,w) bool, pixel_maps (V,3,3) and parallax_dirs (V,3) double,
// all on the device. Returns cudaErrorInvalidValue for V outside [1, 32].
extern "C" cudaError_t spatialvid_flow_triangulate(const double* pixel_maps, const double* parallax_dirs,
                                                   const float* flow, const bool* usable, int64_t num_views,
                                                   int64_t height, int64_t width, float* inv_depth,
                                                   float* parallax_px, float* residual_px, uint8_t* views_used,
                                                   cudaStream_t stream) {
  if (num_views < 1 || num_views > kMaxViews) return cudaErrorInvalidValue;
  const int64_t n = height * width;
  if (n == 0) return cudaSuccess;
  flow_triangulate_kernel<<<blocks_for(n), kFlowThreads, 0, stream>>>(pixel_maps, parallax_dirs, flow, usable,
                                                                  (int)num_views, height, width, inv_depth,
                                                                  parallax_px, residual_px, views_used);
  return cudaGetLastError();
}

// score (h,w) = min over views of |flow - rigid| / (noise_px + parallax_tolerance * |rigid - rotation flow|),
// the distance to the rotation-to-rigid segment where the depth is not measured.
extern "C" cudaError_t spatialvid_flow_residual_score(const double* pixel_maps, const double* parallax_dirs,
                                                      const float* flow, const float* inv_depth, const bool* measured,
                                                      int64_t num_views, int64_t height, int64_t width,
                                                      float noise_px, float parallax_tolerance, float* score,
                                                      cudaStream_t stream) {
  if (num_views < 1 || num_views > kMaxViews) return cudaErrorInvalidValue;
  const int64_t n = height * width;
  if (n == 0) return cudaSuccess;
  flow_residual_score_kernel<<<blocks_for(n), kFlowThreads, 0, stream>>>(pixel_maps, parallax_dirs, flow, inv_depth,
                                                                     measured, (int)num_views, height, width,
                                                                     noise_px, parallax_tolerance, score);
  return cudaGetLastError();
}
