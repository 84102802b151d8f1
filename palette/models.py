"""The model factory: one place that turns a training config into its network, imported by
training, checkpoints, inference and the benchmarks (so loading a checkpoint never imports the
trainer), and the regression baseline's two functions (its loss and its one forward pass).
"""

from __future__ import annotations

import torch
from torch import nn

from palette.config import TrainConfig


def build_model(config: TrainConfig) -> nn.Module:
    """The U-Net of `config.preset`; the regression baseline sees the source only and the
    unconditional model (conditioning: none) the noisy target only (3 channels each). Its
    `prediction` attribute names its diffusion target (eps or v) and `residual` whether it diffuses
    the target minus the source, for the samplers."""
    from palette.unet import build_unet

    overrides = dict(config.model_overrides)
    if config.objective == "regression" or config.conditioning == "none":
        overrides["in_channels"] = 3
    network = build_unet(config.preset, **overrides)
    network.prediction = config.prediction  # what its output means: palette.diffusion.noise_prediction
    network.residual = config.residual  # what it denoises: palette.diffusion.sample(residual=...)
    return network


def parameter_count(config: TrainConfig) -> int:
    """Parameters of `config`'s network, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        return sum(parameter.numel() for parameter in build_model(config).parameters())


def regression_loss(model, source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's regression baseline: ||f(x) - y||^2, over the pixels the model must produce."""
    from palette.diffusion import generated_pixel_mean

    gamma = torch.ones(source.shape[0], device=source.device)  # unused by the task; kept constant
    return generated_pixel_mean((model(source, gamma).float() - target).pow(2), mask)


@torch.no_grad()
def regression_predict(model: nn.Module, source: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One forward pass of a regression model; known pixels of masked tasks are kept from the source."""
    from palette.diffusion import keep_known_pixels

    gamma = torch.ones(source.shape[0], device=source.device)
    return keep_known_pixels(model(source, gamma).float().clamp(-1, 1), source, mask)
