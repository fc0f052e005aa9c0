// CPU entry points over the kernels' own per-observation / per-pixel functions, for machines
// without a GPU: tests/kernels builds this with nvcc into a shared library and compares it with the
// torch reference, so the kernels' arithmetic is tested everywhere nvcc exists. Only the launch
// structure (grid-stride loops, shared-memory reduction, atomics) needs a GPU to be tested.

#include "ba_normal_equations.cu"
#include "flow_geometry.cu"

#include <cstring>

extern "C" void spatialvid_ba_normal_equations_host(
    const double* residuals, const double* weights, const int64_t* pose_index, const double* pose_jacobians,
    const int64_t* point_index, const double* point_jacobians, int64_t num_observations, int64_t blocks_per_observation,
    int64_t num_poses, int64_t num_points, double* Hcc, double* gc, double* Hpp, double* gp, double* Hcp) {
  const int64_t nc = num_poses * kPoseDof;
  std::memset(Hcc, 0, sizeof(double) * nc * nc);
  std::memset(gc, 0, sizeof(double) * nc);
  std::memset(Hpp, 0, sizeof(double) * num_points);
  std::memset(gp, 0, sizeof(double) * num_points);
  std::memset(Hcp, 0, sizeof(double) * nc * num_points);
  for (int64_t m = 0; m < num_observations; ++m)
    add_observation(m, true, residuals, weights, pose_index + m * blocks_per_observation, pose_jacobians, point_index,
                    point_jacobians, (int)blocks_per_observation, nc, num_points, Hcc, gc, Hpp, gp, Hcp, AddEach{});
}

extern "C" void spatialvid_flow_triangulate_host(const double* pixel_maps, const double* parallax_dirs,
                                                 const float* flow, const bool* usable, int64_t num_views,
                                                 int64_t height, int64_t width, float* inv_depth, float* parallax_px,
                                                 float* residual_px, uint8_t* views_used) {
  const auto* H = reinterpret_cast<const double(*)[9]>(pixel_maps);
  const auto* b = reinterpret_cast<const double(*)[3]>(parallax_dirs);
  for (int64_t i = 0; i < height * width; ++i)
    triangulate_pixel(H, b, flow, usable, (int)num_views, height * width, width, i, inv_depth, parallax_px,
                      residual_px, views_used);
}

extern "C" void spatialvid_flow_residual_score_host(const double* pixel_maps, const double* parallax_dirs,
                                                    const float* flow, const float* inv_depth, const bool* measured,
                                                    int64_t num_views, int64_t height, int64_t width, float noise_px,
                                                    float parallax_tolerance, float* score) {
  const auto* H = reinterpret_cast<const double(*)[9]>(pixel_maps);
  const auto* b = reinterpret_cast<const double(*)[3]>(parallax_dirs);
  for (int64_t i = 0; i < height * width; ++i)
    score_pixel(H, b, flow, inv_depth, measured, (int)num_views, height * width, width, i, noise_px,
                parallax_tolerance, score);
}
