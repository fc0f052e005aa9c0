"""RAFT optical flow (Teed & Deng 2020), compact, with the published checkpoint's parameter names.

``{weights_dir}/raft/raft-things.pth`` (princeton-vl/RAFT; also ``raft-sintel``,
``raft-kitti``, ``raft-chairs``) is a ``DataParallel`` state dict: every key
starts with ``module.``. The modules below are named exactly as in that
checkpoint (``fnet``, ``cnet``, ``update_block.encoder/gru/flow_head/mask``), so
it loads strictly once the prefix is stripped. Only the full-size model (the
published ``raft-*.pth``) is built here, not ``raft-small``.

Inference follows the authors' demo: frames are scaled to [-1, 1], padded by
replication to a multiple of 8, 20 refinement iterations with the all-pairs
correlation pyramid (4 levels, radius 4), convex 8x upsampling of the last
estimate, and the padding is cut away again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.models.images import as_image_batch
from services.models.weights import describe, find_layout

NAME = "raft"
SUBDIR = "raft"
CHECKPOINTS = ("raft-things.pth", "raft-sintel.pth", "raft-kitti.pth", "raft-chairs.pth")
LAYOUTS = [(name,) for name in CHECKPOINTS]

INPUTS = {"image1": ("uint8", (-1, -1, -1, 3)), "image2": ("uint8", (-1, -1, -1, 3))}
OUTPUTS = {"flow": ("float32", (-1, -1, -1, 2))}

CORR_LEVELS = 4
CORR_RADIUS = 4
HIDDEN_DIM = 128
CONTEXT_DIM = 128
ITERATIONS = 20


def build_network():
    """The RAFT network (torch imported here, so importing this module stays cheap)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def norm(kind: str, channels: int) -> nn.Module:
        # "instance" has no parameters (affine=False), so those keys are absent from the checkpoint.
        return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)

    class ResidualBlock(nn.Module):
        def __init__(self, cin: int, cout: int, kind: str, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)
            self.norm1, self.norm2 = norm(kind, cout), norm(kind, cout)
            self.downsample = None
            if stride != 1:
                # Registered twice on purpose: the published keys hold both norm3.* and downsample.1.*.
                self.norm3 = norm(kind, cout)
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), self.norm3)

        def forward(self, x):
            y = self.relu(self.norm1(self.conv1(x)))
            y = self.relu(self.norm2(self.conv2(y)))
            if self.downsample is not None:
                x = self.downsample(x)
            return self.relu(x + y)

    class Encoder(nn.Module):
        def __init__(self, out_dim: int, kind: str):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
            self.norm1 = norm(kind, 64)
            self.relu1 = nn.ReLU(inplace=True)
            self.layer1 = nn.Sequential(ResidualBlock(64, 64, kind, 1), ResidualBlock(64, 64, kind, 1))
            self.layer2 = nn.Sequential(ResidualBlock(64, 96, kind, 2), ResidualBlock(96, 96, kind, 1))
            self.layer3 = nn.Sequential(ResidualBlock(96, 128, kind, 2), ResidualBlock(128, 128, kind, 1))
            self.conv2 = nn.Conv2d(128, out_dim, 1)

        def forward(self, x):
            x = self.relu1(self.norm1(self.conv1(x)))
            return self.conv2(self.layer3(self.layer2(self.layer1(x))))

    class MotionEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            planes = CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2
            self.convc1 = nn.Conv2d(planes, 256, 1)
            self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
            self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
            self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
            self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

        def forward(self, flow, corr):
            cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
            flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
            return torch.cat([F.relu(self.conv(torch.cat([cor, flo], 1))), flow], 1)

    class SepConvGRU(nn.Module):
        def __init__(self, hidden: int, inp: int):
            super().__init__()
            for axis, (kernel, pad) in enumerate((((1, 5), (0, 2)), ((5, 1), (2, 0))), start=1):
                for gate in "zrq":
                    setattr(self, f"conv{gate}{axis}", nn.Conv2d(hidden + inp, hidden, kernel, padding=pad))

        def forward(self, h, x):
            for axis in (1, 2):  # horizontal, then vertical
                hx = torch.cat([h, x], 1)
                z = torch.sigmoid(getattr(self, f"convz{axis}")(hx))
                r = torch.sigmoid(getattr(self, f"convr{axis}")(hx))
                q = torch.tanh(getattr(self, f"convq{axis}")(torch.cat([r * h, x], 1)))
                h = (1 - z) * h + z * q
            return h

    class FlowHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(HIDDEN_DIM, 256, 3, padding=1)
            self.conv2 = nn.Conv2d(256, 2, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.conv2(self.relu(self.conv1(x)))

    class UpdateBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = MotionEncoder()
            self.gru = SepConvGRU(HIDDEN_DIM, 128 + HIDDEN_DIM)
            self.flow_head = FlowHead()
            self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1))

        def forward(self, net, inp, corr, flow):
            net = self.gru(net, torch.cat([inp, self.encoder(flow, corr)], 1))
            # The 0.25 scale is part of the trained model (it balanced gradients in training).
            return net, 0.25 * self.mask(net), self.flow_head(net)

    def pixel_grid(batch: int, height: int, width: int, device):
        ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
        return torch.stack([xs, ys], 0).float()[None].expand(batch, -1, -1, -1)

    def sample(volume, coords):
        """Bilinear lookup at pixel coordinates (x, y), zeros outside (align_corners=True convention)."""
        height, width = volume.shape[-2:]
        x, y = coords.split(1, dim=-1)
        grid = torch.cat([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
        return F.grid_sample(volume, grid, align_corners=True)

    class CorrPyramid:
        def __init__(self, fmap1, fmap2):
            batch, dim, height, width = fmap1.shape
            corr = torch.matmul(fmap1.flatten(2).transpose(1, 2), fmap2.flatten(2)) / dim**0.5
            corr = corr.reshape(batch * height * width, 1, height, width)
            self.levels = [corr]
            for _ in range(CORR_LEVELS - 1):
                corr = F.avg_pool2d(corr, 2, stride=2)
                self.levels.append(corr)
            r = torch.linspace(-CORR_RADIUS, CORR_RADIUS, 2 * CORR_RADIUS + 1, device=fmap1.device)
            # As published: the first offset channel (added to x) runs over the meshgrid's first axis.
            self.delta = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).view(1, 2 * CORR_RADIUS + 1, -1, 2)

        def __call__(self, coords):
            batch, _, height, width = coords.shape
            centre = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
            out = [
                sample(level, centre / 2**i + self.delta).view(batch, height, width, -1)
                for i, level in enumerate(self.levels)
            ]
            return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()

    class RAFT(nn.Module):
        def __init__(self):
            super().__init__()
            self.fnet = Encoder(256, "instance")
            self.cnet = Encoder(HIDDEN_DIM + CONTEXT_DIM, "batch")
            self.update_block = UpdateBlock()

        @staticmethod
        def upsample(flow, mask):
            """Convex combination of 3x3 coarse neighbours: (N, 2, H, W) -> (N, 2, 8H, 8W)."""
            batch, _, height, width = flow.shape
            mask = torch.softmax(mask.view(batch, 1, 9, 8, 8, height, width), dim=2)
            up = F.unfold(8 * flow, [3, 3], padding=1).view(batch, 2, 9, 1, 1, height, width)
            up = torch.sum(mask * up, dim=2).permute(0, 1, 4, 2, 5, 3)
            return up.reshape(batch, 2, 8 * height, 8 * width)

        def forward(self, image1, image2, iters: int = ITERATIONS):
            """Flow from image1 to image2, both (N, 3, H, W) in 0..255 with H, W multiples of 8."""
            image1 = 2 * (image1 / 255.0) - 1.0
            image2 = 2 * (image2 / 255.0) - 1.0
            fmaps = self.fnet(torch.cat([image1, image2], 0))
            corr = CorrPyramid(*fmaps.float().chunk(2, dim=0))
            net, inp = torch.split(self.cnet(image1), [HIDDEN_DIM, CONTEXT_DIM], dim=1)
            net, inp = torch.tanh(net), torch.relu(inp)
            batch, _, height, width = image1.shape
            coords0 = pixel_grid(batch, height // 8, width // 8, image1.device)
            coords1 = coords0.clone()
            for _ in range(iters):
                net, mask, delta = self.update_block(net, inp, corr(coords1), coords1 - coords0)
                coords1 = coords1 + delta
            return self.upsample(coords1 - coords0, mask)

    return RAFT()


def pad_to_multiple_of_8(height: int, width: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) replicate padding of the authors' InputPadder (default mode)."""
    pad_h = (-height) % 8
    pad_w = (-width) % 8
    return pad_w // 2, pad_w - pad_w // 2, 0, pad_h


@dataclass
class Raft:
    model: object
    backend: str
    device: str = "cpu"
    iterations: int = ITERATIONS
    name: str = field(default=NAME)

    def predict(self, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
        """Optical flow (N, H, W, 2) in pixels (dx, dy) from RGB frames image1 to image2."""
        import torch
        import torch.nn.functional as F

        a, b = as_image_batch(image1), as_image_batch(image2)
        if a.shape != b.shape:
            raise ValueError(f"frame pairs must match: {a.shape} vs {b.shape}")
        height, width = a.shape[1:3]
        left, right, top, bottom = pad_to_multiple_of_8(height, width)
        if min(height + top + bottom, width + left + right) < 128:
            # The coarsest of the four correlation levels (1/64 of the frame) must keep 2 cells
            # per side: bilinear lookup on a single cell divides by zero, as in the original.
            raise ValueError(f"RAFT needs frames of at least 128 px per side, got {height}x{width}")

        def tensor(frames):
            t = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).float().to(self.device)
            return F.pad(t, [left, right, top, bottom], mode="replicate")

        with torch.inference_mode():
            flow = self.model(tensor(a), tensor(b), iters=self.iterations)
        flow = flow[..., top : top + height, left : left + width]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"flow": self.predict(inputs["image1"], inputs["image2"])}


def strip_data_parallel(state: dict) -> dict:
    return {key.removeprefix("module."): value for key, value in state.items()}


def load(weights_dir: Path, device: str = "cpu", iterations: int = ITERATIONS) -> Raft:
    import torch

    folder = Path(weights_dir) / SUBDIR
    _, paths = find_layout("RAFT", folder, LAYOUTS)
    state = torch.load(paths[0], map_location="cpu", weights_only=True)
    model = build_network()
    model.load_state_dict(strip_data_parallel(state), strict=True)
    model = model.to(device).eval()
    backend = f"raft-large (princeton-vl layout, torch {torch.__version__}, weights {describe(paths[0], weights_dir)})"
    return Raft(model=model, backend=backend, device=device, iterations=iterations)
