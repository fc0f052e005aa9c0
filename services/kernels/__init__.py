"""Hot inner loops of the camera and depth workers as ``spatialvid::`` PyTorch operators.

Operators (``ops``; contracts and CPU maths in ``reference``):
  - ``ba_normal_equations``: per-observation residuals and Jacobian blocks -> Hessian and gradient
    of the bundle adjustment (services.camera.optim builds its LM step from them);
  - ``flow_triangulate``: per-pixel inverse depth from dense flow to known-pose views;
  - ``flow_residual_score``: observed vs rigid flow, the motion-mask evidence.
Each has a vectorised torch implementation (CPU, or any device) and a CUDA kernel in
``cuda_kernels/`` registered for CUDA tensors when built (``loader``: ahead-of-time
``pip install ./cuda_kernels`` in the GPU image, else a JIT build where CUDA torch and nvcc exist).
The KLT front end (``klt``: pyramidal Lucas-Kanade as torch ops; ``klt_ops``: OpenCV on the CPU,
torch on CUDA, with the forward-backward check) is not a custom operator: it is torch all through.
``bundle_ops`` / ``flow_ops`` / ``klt_ops`` are the numpy-facing entry points; ``backend`` picks the device from
settings ``kernels.device`` (auto|cpu|cuda|torch-cuda) and logs which implementation runs.
"""
