// torch binding of the CUDA kernels (compiled only where CUDA torch exists: setup.py for the GPU
// image, torch.utils.cpp_extension.load for a JIT build). services/kernels/ops.py registers these
// functions as the CUDA implementations of the spatialvid:: operators; the .cu files know nothing
// of torch (raw pointers, sizes and a stream).

#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <cuda_runtime.h>
#include <cstdint>

extern "C" cudaError_t spatialvid_ba_normal_equations(
    const double* residuals, const double* weights, const int64_t* pose_index, const double* pose_jacobians,
    const int64_t* point_index, const double* point_jacobians, int64_t num_observations, int64_t blocks_per_observation,
    int64_t num_poses, int64_t num_points, double* Hcc, double* gc, double* Hpp, double* gp, double* Hcp,
    cudaStream_t stream);
extern "C" cudaError_t spatialvid_flow_triangulate(const double* pixel_maps, const double* parallax_dirs,
                                                   const float* flow, const bool* usable, int64_t num_views,
                                                   int64_t height, int64_t width, float* inv_depth,
                                                   float* parallax_px, float* residual_px, uint8_t* views_used,
                                                   cudaStream_t stream);
extern "C" cudaError_t spatialvid_flow_residual_score(const double* pixel_maps, const double* parallax_dirs,
                                                      const float* flow, const float* inv_depth, const bool* measured,
                                                      int64_t num_views, int64_t height, int64_t width,
                                                      float noise_px, float parallax_tolerance, float* score,
                                                      cudaStream_t stream);

namespace {

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, at::IntArrayRef shape) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, " must have shape ", shape, ", got ", t.sizes());
}

void raise_on(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": ", cudaGetErrorString(err));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> ba_normal_equations(
    const at::Tensor& residuals, const at::Tensor& weights, const at::Tensor& pose_index,
    const at::Tensor& pose_jacobians, const at::Tensor& point_index, const at::Tensor& point_jacobians,
    int64_t num_poses, int64_t num_points) {
  const int64_t M = residuals.size(0), B = pose_index.dim() == 2 ? pose_index.size(1) : -1;
  check(residuals, "residuals", at::kDouble, {M, 2});
  check(weights, "weights", at::kDouble, {M});
  check(pose_index, "pose_index", at::kLong, {M, B});
  check(pose_jacobians, "pose_jacobians", at::kDouble, {M, B, 2, 6});
  check(point_index, "point_index", at::kLong, {M});
  check(point_jacobians, "point_jacobians", at::kDouble, {M, 2});
  TORCH_CHECK(B >= 0 && B <= 4, "at most 4 pose blocks per observation, got ", B);
  const c10::cuda::CUDAGuard guard(residuals.device());
  auto r = residuals.contiguous(), w = weights.contiguous(), pi = pose_index.contiguous();
  auto J = pose_jacobians.contiguous(), qi = point_index.contiguous(), jp = point_jacobians.contiguous();
  const int64_t nc = 6 * num_poses;
  auto opts = r.options();
  auto Hcc = at::empty({nc, nc}, opts), gc = at::empty({nc}, opts);
  auto Hpp = at::empty({num_points}, opts), gp = at::empty({num_points}, opts);
  auto Hcp = at::empty({nc, num_points}, opts);
  raise_on(spatialvid_ba_normal_equations(r.data_ptr<double>(), w.data_ptr<double>(), pi.data_ptr<int64_t>(),
                                          J.data_ptr<double>(), qi.data_ptr<int64_t>(), jp.data_ptr<double>(), M, B,
                                          num_poses, num_points, Hcc.data_ptr<double>(), gc.data_ptr<double>(),
                                          Hpp.data_ptr<double>(), gp.data_ptr<double>(), Hcp.data_ptr<double>(),
                                          c10::cuda::getCurrentCUDAStream().stream()),
           "spatialvid_ba_normal_equations");
  return {Hcc, gc, Hpp, gp, Hcp};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> flow_triangulate(const at::Tensor& pixel_maps,
                                                                            const at::Tensor& parallax_dirs,
                                                                            const at::Tensor& flow,
                                                                            const at::Tensor& usable) {
  TORCH_CHECK(usable.dim() == 3, "usable must be (V,h,w)");
  const int64_t V = usable.size(0), h = usable.size(1), w = usable.size(2);
  check(pixel_maps, "pixel_maps", at::kDouble, {V, 3, 3});
  check(parallax_dirs, "parallax_dirs", at::kDouble, {V, 3});
  check(flow, "flow", at::kFloat, {V, h, w, 2});
  check(usable, "usable", at::kBool, {V, h, w});
  TORCH_CHECK(V >= 1 && V <= 32, "1 to 32 views, got ", V);
  const c10::cuda::CUDAGuard guard(flow.device());
  auto H = pixel_maps.contiguous(), b = parallax_dirs.contiguous(), f = flow.contiguous(), m = usable.contiguous();
  auto fopts = f.options();
  auto inv = at::empty({h, w}, fopts), par = at::empty({h, w}, fopts), res = at::empty({h, w}, fopts);
  auto used = at::empty({h, w}, fopts.dtype(at::kByte));
  raise_on(spatialvid_flow_triangulate(H.data_ptr<double>(), b.data_ptr<double>(), f.data_ptr<float>(),
                                       m.data_ptr<bool>(), V, h, w, inv.data_ptr<float>(), par.data_ptr<float>(),
                                       res.data_ptr<float>(), used.data_ptr<uint8_t>(),
                                       c10::cuda::getCurrentCUDAStream().stream()),
           "spatialvid_flow_triangulate");
  return {inv, par, res, used};
}

at::Tensor flow_residual_score(const at::Tensor& pixel_maps, const at::Tensor& parallax_dirs, const at::Tensor& flow,
                               const at::Tensor& inv_depth, const at::Tensor& measured, double noise_px,
                               double parallax_tolerance) {
  TORCH_CHECK(flow.dim() == 4, "flow must be (V,h,w,2)");
  const int64_t V = flow.size(0), h = flow.size(1), w = flow.size(2);
  check(pixel_maps, "pixel_maps", at::kDouble, {V, 3, 3});
  check(parallax_dirs, "parallax_dirs", at::kDouble, {V, 3});
  check(flow, "flow", at::kFloat, {V, h, w, 2});
  check(inv_depth, "inv_depth", at::kFloat, {h, w});
  check(measured, "measured", at::kBool, {h, w});
  TORCH_CHECK(V >= 1 && V <= 32, "1 to 32 views, got ", V);
  const c10::cuda::CUDAGuard guard(flow.device());
  auto H = pixel_maps.contiguous(), b = parallax_dirs.contiguous(), f = flow.contiguous();
  auto d = inv_depth.contiguous(), m = measured.contiguous();
  auto score = at::empty({h, w}, f.options());
  raise_on(spatialvid_flow_residual_score(H.data_ptr<double>(), b.data_ptr<double>(), f.data_ptr<float>(),
                                          d.data_ptr<float>(), m.data_ptr<bool>(), V, h, w, (float)noise_px,
                                          (float)parallax_tolerance, score.data_ptr<float>(),
                                          c10::cuda::getCurrentCUDAStream().stream()),
           "spatialvid_flow_residual_score");
  return score;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "spatialvid CUDA kernels (bundle-adjustment normal equations, flow triangulation, flow residual)";
  m.def("ba_normal_equations", &ba_normal_equations);
  m.def("flow_triangulate", &flow_triangulate);
  m.def("flow_residual_score", &flow_residual_score);
}
