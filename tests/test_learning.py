"""End to end, on real photos: a tiny Palette learns to inpaint.

A tiny U-Net trains for 300 steps (about a minute on one CPU core) on crops of the photos that
install with the project. Its loss must fall clearly, and a fast sampler must then fill the hole
closer to the ground truth than the noise-filled input the model starts from.
"""

import numpy as np
import torch
import torch.nn.functional as F

from palette import diffusion as D
from palette.data import demo_photo_paths
from palette.imageio import load_image, to_tensor
from palette.unet import build_unet

STEPS = 300


def real_crops(size=32, per_photo=3):
    crops = []
    for path in demo_photo_paths()[:6]:
        image = to_tensor(load_image(path))
        image = F.interpolate(image[None], scale_factor=96 / min(image.shape[1:]), mode="area")[0]
        height, width = image.shape[1:]
        for i in range(per_photo):
            y, x = (height - size) * i // per_photo, (width - size) * (per_photo - 1 - i) // per_photo
            crops.append(image[:, y:y + size, x:x + size])
    return torch.stack(crops)


def test_tiny_palette_learns_to_inpaint_real_photos():
    torch.manual_seed(0)
    data = real_crops()
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    model = build_unet("tiny")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(STEPS):
        target = data[torch.randint(0, len(data), (8,), generator=generator)]
        batch_mask = mask.expand(len(target), -1, -1, -1)
        loss = D.diffusion_loss(model, target * (1 - batch_mask), target, batch_mask, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-50:]) < 0.4 * np.mean(losses[:20]), (np.mean(losses[:20]), np.mean(losses[-50:]))

    model.eval()
    batch_mask = mask.expand(len(data), -1, -1, -1)
    source = data * (1 - batch_mask)
    config = D.SamplerConfig(name="dpm_solver_pp", steps=20, clip_x0=True)
    filled = D.sample(model, source, batch_mask, config, torch.Generator().manual_seed(1), progress=False)
    noise_filled = D.fill_masked_with_noise(source, batch_mask, torch.randn(source.shape, generator=torch.Generator().manual_seed(2)))
    hole = batch_mask.expand(-1, 3, -1, -1) > 0.5
    sample_error = ((filled - data)[hole] ** 2).mean().item()
    noise_error = ((noise_filled - data)[hole] ** 2).mean().item()
    assert sample_error < 0.5 * noise_error, (sample_error, noise_error)
    assert torch.equal(filled[~hole], data[~hole])
