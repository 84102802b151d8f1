"""Palette's conditional diffusion: training loss (Algorithm 1) and samplers (Algorithm 2 and faster).

Notation follows the paper: alpha_t = 1 - beta_t and gamma_t = prod_{s <= t} alpha_s (often called
alpha-bar). A noisy target is y_noisy = sqrt(gamma) * y0 + sqrt(1 - gamma) * eps, and the network
f(x, y_noisy, gamma) predicts eps. The network is conditioned on the continuous noise level gamma
itself (SR3 / WaveGrad), not on a step index, so inference may use any schedule: the paper trains
with 2000 steps of linear betas 1e-6..0.01 and samples with 1000 steps of linear betas 1e-4..0.09.
Every sampler here therefore works on a decreasing list of gammas, ending at gamma = 1 (clean).

Masked tasks (inpainting, uncropping): the source's missing pixels are filled with Gaussian noise
(no mask channel, docs/paper.md); in the noisy target the known pixels are the clean ones, in training
and at every sampling step, so the network sees the same thing in both; the loss covers only the
missing pixels. The known pixels come from the source, so sampling never needs ground truth.
In a batch, a sample whose mask is all zeros has no mask (the multi-task mixture mixes both).

The network is called as ``model(torch.cat([source, y_noisy], dim=1), gamma)`` with gamma of
shape [B].

Prediction target (TrainConfig.prediction): "eps", the paper's, or "v" = sqrt(gamma) eps -
sqrt(1 - gamma) y0 (Salimans & Ho 2022), a named departure. An eps network must resolve x0 from
a correction of size sqrt(gamma) to its output, which at the training schedule's noisiest level
(gamma 4.4e-5) a briefly trained network cannot: its colours there are noise (docs/demo.md). A v
network outputs about -y0 at high noise. The samplers see every network as an eps network
(`noise_prediction`); the v loss is ||v_hat - v||^2 = ||eps_hat - eps||^2 / gamma.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from palette.sampler_presets import ANCESTRAL_SAMPLERS, SAMPLER_NAMES, resolve_sampler, sampler_problem

NoiseModel = Callable[[Tensor, Tensor], Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None
PREDICTIONS = ("eps", "v")


def check_prediction(prediction: str) -> str:
    """`prediction` itself if it names a prediction target, else a ValueError naming the choices."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def noise_prediction(network: Callable[[Tensor, Tensor], Tensor], prediction: str = "eps") -> NoiseModel:
    """`network` as the eps predictor the samplers call: itself for "eps"; for "v",
    eps = sqrt(1 - gamma) y + sqrt(gamma) v, y being the input's last three channels (the noisy
    target, with or without a source before it)."""
    if check_prediction(prediction) == "eps":
        return network

    def eps_from_v(x: Tensor, gamma: Tensor) -> Tensor:
        g = gamma.view(-1, 1, 1, 1).float()
        return (1 - g).sqrt() * x[:, -3:].float() + g.sqrt() * network(x, gamma).float()

    return eps_from_v


@dataclass(frozen=True)
class LinearSchedule:
    """A linear beta schedule and its gammas (Palette section 3; SR3 section 2.4)."""

    beta_start: float
    beta_end: float
    num_steps: int

    def betas(self) -> Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=torch.float64)

    def gammas(self) -> Tensor:
        """gamma_1 .. gamma_T, float64, decreasing from 1 - beta_start."""
        return torch.cumprod(1.0 - self.betas(), dim=0)


TRAINING_SCHEDULE = LinearSchedule(beta_start=1e-6, beta_end=0.01, num_steps=2000)
INFERENCE_SCHEDULE = LinearSchedule(beta_start=1e-4, beta_end=0.09, num_steps=1000)


# ----------------------------------------------------------------------------------------------
# Randomness: one generator for the batch, or one per sample so that a sample does not depend on
# which other images share its batch.


def randn(shape: Sequence[int], generator: Generators, device: torch.device | str | None = None) -> Tensor:
    """Standard normal noise of `shape` ([B, ...]), drawn on each generator's device, moved to `device`."""
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        return torch.randn(tuple(shape), generator=generator, device=gen_device).to(device)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=g.device) for g in generator]).to(device)


# ----------------------------------------------------------------------------------------------
# Training: Palette Algorithm 1.


@lru_cache(maxsize=8)
def _gamma_table(schedule: LinearSchedule, device: torch.device) -> Tensor:
    """[gamma_0 = 1, gamma_1 .. gamma_T] on `device`, made once: copying it from the host every
    step would make each training step wait for the GPU to finish the previous one."""
    return torch.cat([torch.ones(1, dtype=torch.float64), schedule.gammas()]).to(device)


def sample_training_gamma(
    batch_size: int,
    generator: Generators = None,
    schedule: LinearSchedule = TRAINING_SCHEDULE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw t ~ U{1..T}, then gamma ~ U(gamma_{t-1}, gamma_t) with gamma_0 = 1 (Algorithm 1; SR3 eq. 5).

    Drawn on the generator's device (no host sync when training on a GPU), in float64; with a
    list of generators, sample i's gamma comes from generator i.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        if len(generator) != batch_size:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch_size}")
        return torch.cat([sample_training_gamma(1, g, schedule, device) for g in generator])
    gen_device = generator.device if generator is not None else torch.device("cpu")
    gammas = _gamma_table(schedule, gen_device)
    t = torch.randint(1, schedule.num_steps + 1, (batch_size,), generator=generator, device=gen_device)
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64, device=gen_device)
    gamma = gammas[t - 1] + u * (gammas[t] - gammas[t - 1])
    return gamma.to(device=device, dtype=torch.float32)


def has_mask(mask: Tensor | None) -> Tensor | None:
    """[B] bool: which samples of a batch carry a mask (an all-zeros mask means none)."""
    return None if mask is None else mask.flatten(1).amax(dim=1) > 0


def fill_masked_with_noise(source: Tensor, mask: Tensor | None, noise: Tensor) -> Tensor:
    """Replace the missing pixels of the source (mask = 1) by Gaussian noise (Palette section 4)."""
    if mask is None:
        return source
    return torch.where(mask > 0.5, noise, source)


def generated_pixels(mask: Tensor | None, like: Tensor) -> Tensor:
    """[B, 1, H, W]: 1 where the model generates: the mask for masked samples, everywhere for the others."""
    ones = torch.ones_like(like[:, :1])
    if mask is None:
        return ones
    masked = has_mask(mask).view(-1, 1, 1, 1)
    return torch.where(masked, mask.to(like.dtype), ones)


def keep_known_pixels(y: Tensor, source: Tensor, mask: Tensor | None) -> Tensor:
    """Only masked pixels come from the model; known pixels are the source's (paper, section 4)."""
    if mask is None:
        return y
    return torch.where(generated_pixels(mask, y) > 0.5, y, source)


def generated_pixel_mean(error: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of a per-pixel error [B, C, H, W] over the pixels each sample generates, then over the
    batch: a mask's size does not change its sample's weight (docs/paper.md, Diffusion)."""
    weights = generated_pixels(mask, error)
    per_sample = (error * weights).sum(dim=(1, 2, 3)) / (weights.sum(dim=(1, 2, 3)) * error.shape[1])
    return per_sample.mean()


def residual_offset(source: Tensor, mask: Tensor | None) -> Tensor:
    """What residual diffusion subtracts from the target: the source itself. Only for tasks
    without a mask, whose source is a degraded target of the same size."""
    if mask is not None:
        raise ValueError("residual diffusion needs a task without a mask (colorization, JPEG, super-resolution): "
                         "a masked source holds no guess of the missing pixels")
    return source


def diffusion_loss(
    model: NoiseModel,
    source: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    loss_type: str = "l2",
    generator: Generators = None,
    schedule: LinearSchedule = TRAINING_SCHEDULE,
    prediction: str = "eps",
    residual: bool = False,
) -> Tensor:
    """Palette Algorithm 1: E ||f(x, sqrt(gamma) y0 + sqrt(1 - gamma) eps, gamma) - eps||_p^p
    (with prediction "v", the network's target is v = sqrt(gamma) eps - sqrt(1 - gamma) y0).
    With `residual`, y0 is the target minus the source (a named departure for tasks without a
    mask, where the source is a degraded target: `sample(residual=True)` adds the source back).

    The p-th power error is averaged over the pixels each sample generates (all pixels, or the
    masked ones), then over the batch: a mask's size does not change its sample's weight.
    `generator`: one for the batch, or one per sample (then a sample's gamma and noise do not
    depend on the rest of its batch; the trainer seeds them by the sample's index in the run).
    """
    exponent = {"l2": 2, "l1": 1}.get(loss_type)
    if exponent is None:
        raise ValueError(f"loss_type must be 'l1' or 'l2', got {loss_type!r}")
    batch_size, device = target.shape[0], target.device
    if residual:
        target = target - residual_offset(source, mask)
    gamma = sample_training_gamma(batch_size, generator, schedule, device)
    noise = randn(target.shape, generator, device)
    g = gamma.view(-1, 1, 1, 1)
    y_noisy = keep_known_pixels(g.sqrt() * target + (1 - g).sqrt() * noise, target, mask)
    if mask is not None:
        source = fill_masked_with_noise(source, mask, randn(source.shape, generator, device))
    wanted = noise if check_prediction(prediction) == "eps" else g.sqrt() * noise - (1 - g).sqrt() * target
    predicted = model(torch.cat([source, y_noisy], dim=1), gamma)
    error = (predicted.float() - wanted).abs().pow(exponent)
    return generated_pixel_mean(error, mask)


# ----------------------------------------------------------------------------------------------
# Inference.

SAMPLERS = SAMPLER_NAMES


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample. `paper` is the paper's sampler; the rest are faster, named departures.

    name:      "paper"          Algorithm 2 over all 1000 steps of the inference schedule.
               "ancestral"      Algorithm 2 over `steps` gammas picked from that schedule
                                (respacing, Nichol & Dhariwal 2021): alpha_t = gamma_t / gamma_{t-1}.
               "ddim"           DDIM (Song et al. 2021, eq. 12) with stochasticity `eta`.
               "dpm_solver_pp"  DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), data prediction.
    variance:  "paper" (1 - alpha_t, Algorithm 2) or "posterior" (the clipped posterior
               variance of DDPM, as the public reproduction uses). Ancestral samplers only.
    clip_x0:   clamp the predicted clean image to [-1, 1] before each update (the public
               reproduction does; the paper's Algorithm 2 does not).
    spacing:   how fast samplers pick their `steps` noise levels from the schedule's range:
               "log_snr" (evenly in log-SNR between the schedule's noisiest and cleanest gamma,
               as DPM-Solver recommends; the net is conditioned on gamma, so levels between the
               schedule's steps are fine) or "index" (evenly in step index, as guided-diffusion
               respaces). With the paper's schedule only 123 of its 1000 steps have gamma > 0.5,
               so "index" spends few steps where the image forms. `paper` visits every step.
    noise_scale: multiplies the fresh noise of every stochastic step (the ancestral samplers' z,
               DDIM's with eta > 0), as S_noise in Karras et al. 2022 (EDM, Algorithm 2). 1 is
               the paper; below 1 trades diversity for cleaner samples from briefly trained
               networks, whose fills carry more high-frequency energy than the data (docs/demo.md).
    schedule:  beta_start, beta_end, schedule_steps: the schedule the gammas come from.
    """

    name: str = "paper"
    steps: int = 1000
    eta: float = 0.0
    variance: str = "paper"
    clip_x0: bool = False
    spacing: str = "log_snr"
    noise_scale: float = 1.0
    beta_start: float = INFERENCE_SCHEDULE.beta_start
    beta_end: float = INFERENCE_SCHEDULE.beta_end
    schedule_steps: int = INFERENCE_SCHEDULE.num_steps

    def __post_init__(self) -> None:
        problem = sampler_problem(asdict(self))
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_dict(cls, values: dict) -> "SamplerConfig":
        """From a mapping of field values; a `preset` key (palette.sampler_presets) supplies the
        values the mapping does not give."""
        if "preset" in values:
            values = resolve_sampler(values)
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown sampler keys {sorted(unknown)}; known keys: {sorted(known)}")
        values = dict(values)
        if values.get("name", "paper") == "paper":
            values.setdefault("steps", values.get("schedule_steps", INFERENCE_SCHEDULE.num_steps))
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def gammas(self) -> Tensor:
        """The decreasing noise levels visited, float64: gamma_{t_N} .. gamma_{t_1}, then 1 (clean)."""
        schedule = LinearSchedule(self.beta_start, self.beta_end, self.schedule_steps).gammas()
        if self.spacing == "index" or self.steps == self.schedule_steps:
            # Keep the schedule's first and last step and spread the rest evenly.
            index = torch.linspace(0, self.schedule_steps - 1, self.steps, dtype=torch.float64).round().long()
            levels = schedule[index].flip(0)
        else:
            log_snr = torch.linspace(_log_snr(schedule[-1]), _log_snr(schedule[0]), self.steps, dtype=torch.float64)
            levels = torch.sigmoid(log_snr)
        return torch.cat([levels, torch.ones(1, dtype=torch.float64)])


class _Denoiser:
    """The network as the samplers see it: noise and clean-image predictions at a noise level."""

    def __init__(self, model: NoiseModel, condition: Tensor, clip_x0: bool, offset: Tensor | float = 0.0) -> None:
        # offset: what is added to the clean estimate to make an image (the source, for residual diffusion)
        self.model, self.condition, self.clip_x0, self.offset = model, condition, clip_x0, offset

    def __call__(self, y: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
        """Return (eps, x0) at noise level gamma, consistent with y = sqrt(g) x0 + sqrt(1-g) eps."""
        gamma_batch = torch.full((y.shape[0],), gamma, device=y.device, dtype=torch.float32)
        eps = self.model(torch.cat([self.condition, y], dim=1), gamma_batch).float()
        x0 = (y - math.sqrt(1 - gamma) * eps) / math.sqrt(gamma)
        if self.clip_x0:
            x0 = (x0 + self.offset).clamp(-1, 1) - self.offset
            eps = (y - math.sqrt(gamma) * x0) / math.sqrt(1 - gamma)
        return eps, x0


def ancestral_step(y: Tensor, eps: Tensor, gamma_t: float, gamma_prev: float, variance: str, z: Tensor) -> Tensor:
    """Palette Algorithm 2, one step, with alpha_t = gamma_t / gamma_{t-1} (exact for any respacing):

    y_{t-1} = (y_t - (1 - alpha_t) / sqrt(1 - gamma_t) * f) / sqrt(alpha_t) + sigma_t z,
    sigma_t^2 = 1 - alpha_t ("paper") or (1 - gamma_{t-1}) / (1 - gamma_t) (1 - alpha_t) ("posterior").
    """
    alpha = gamma_t / gamma_prev
    mean = (y - (1 - alpha) / math.sqrt(1 - gamma_t) * eps) / math.sqrt(alpha)
    if gamma_prev >= 1.0:  # the last step returns the mean (z = 0 in Algorithm 2)
        return mean
    variance_t = 1 - alpha if variance == "paper" else (1 - gamma_prev) / (1 - gamma_t) * (1 - alpha)
    return mean + math.sqrt(variance_t) * z


def ddim_step(y: Tensor, eps: Tensor, x0: Tensor, gamma_t: float, gamma_prev: float, eta: float, z: Tensor) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) from gamma_t to the less noisy gamma_prev."""
    sigma = eta * math.sqrt((1 - gamma_prev) / (1 - gamma_t) * (1 - gamma_t / gamma_prev))
    direction = math.sqrt(max(1 - gamma_prev - sigma**2, 0.0)) * eps
    return math.sqrt(gamma_prev) * x0 + direction + sigma * z


def _log_snr(gamma: Tensor) -> float:
    """log(gamma / (1 - gamma)); gamma = sigmoid(log-SNR)."""
    return float(torch.log(gamma) - torch.log1p(-gamma))


def _half_log_snr(gamma: float) -> float:
    """lambda = log(alpha / sigma) with alpha = sqrt(gamma), sigma = sqrt(1 - gamma)."""
    return 0.5 * (math.log(gamma) - math.log1p(-gamma))


def dpm_solver_pp_2m_step(
    y: Tensor, x0: Tensor, x0_previous: Tensor | None, gammas: Sequence[float], i: int
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) from gammas[i] to gammas[i + 1].

    First order (= DDIM) on the first step and on the final jump to the clean image.
    """
    gamma_t, gamma_next = gammas[i], gammas[i + 1]
    if gamma_next >= 1.0:
        return x0
    sigma_ratio = math.sqrt((1 - gamma_next) / (1 - gamma_t))
    h = _half_log_snr(gamma_next) - _half_log_snr(gamma_t)
    scale = math.sqrt(gamma_next) * math.expm1(-h)  # alpha_next (e^{-h} - 1)
    if x0_previous is None:
        return sigma_ratio * y - scale * x0
    h_previous = _half_log_snr(gamma_t) - _half_log_snr(gammas[i - 1])
    r = h_previous / h
    d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_previous
    return sigma_ratio * y - scale * d


@torch.no_grad()
def sample(
    model: NoiseModel,
    source: Tensor,
    mask: Tensor | None = None,
    config: SamplerConfig = SamplerConfig(),
    generator: Generators = None,
    progress: bool = True,
    residual: bool = False,
) -> Tensor:
    """Generate targets for a batch of sources ([B, 3, H, W] in [-1, 1]) with the chosen sampler.

    `generator` is one torch.Generator for the batch or one per sample (then each sample is the
    same whatever else is in its batch). For masked tasks (mask [B, 1, H, W], 1 = missing) the
    known pixels of the result are exactly the source's. `residual`: the model was trained on
    target - source (`diffusion_loss(residual=True)`); the sampler draws that and adds the source.
    """
    device = source.device
    gammas = config.gammas().tolist()
    if mask is not None and not bool(has_mask(mask).any()):
        mask = None
    offset = residual_offset(source, mask) if residual else 0.0
    condition = fill_masked_with_noise(source, mask, randn(source.shape, generator, device))
    denoise = _Denoiser(model, condition, config.clip_x0, offset)
    y = keep_known_pixels(randn(source.shape, generator, device), source, mask)
    x0_previous = None
    steps = range(len(gammas) - 1)
    for i in tqdm(steps, desc=f"sampling ({config.name})", disable=not progress, leave=False):
        eps, x0 = denoise(y, gammas[i])
        y, x0_previous = _sampler_step(config, y, eps, x0, x0_previous, gammas, i, generator)
        y = keep_known_pixels(y, source, mask)
    return y + offset


def _sampler_step(config: SamplerConfig, y: Tensor, eps: Tensor, x0: Tensor, x0_previous: Tensor | None,
                  gammas: Sequence[float], i: int, generator: Generators) -> tuple[Tensor, Tensor | None]:
    """One update of the chosen sampler from gammas[i] to gammas[i + 1]; returns (y, x0 for the next step)."""
    gamma_t, gamma_prev = gammas[i], gammas[i + 1]
    if config.name in ANCESTRAL_SAMPLERS:
        z = config.noise_scale * randn(y.shape, generator, y.device) if gamma_prev < 1.0 else torch.zeros_like(y)
        return ancestral_step(y, eps, gamma_t, gamma_prev, config.variance, z), x0_previous
    if config.name == "ddim":
        z = (config.noise_scale * randn(y.shape, generator, y.device) if config.eta > 0 and gamma_prev < 1.0
             else torch.zeros_like(y))
        return ddim_step(y, eps, x0, gamma_t, gamma_prev, config.eta, z), x0_previous
    return dpm_solver_pp_2m_step(y, x0, x0_previous, gammas, i), x0


# ----------------------------------------------------------------------------------------------
# The paper's baseline for inpainting: an unconditional model used by imputation (docs/paper.md,
# "Conditional vs unconditional"). The same U-Net without the source channels is trained on the
# targets alone; to inpaint, every sampling step replaces the known pixels of the current image by
# the source's known pixels noised to that step's level (the "replacement" imputation of Song et al.
# 2021, score-based generative modelling through SDEs), so the model never sees the source directly.


def without_source(model: Callable[[Tensor, Tensor], Tensor]) -> NoiseModel:
    """An unconditional network (input: the noisy image alone) behind the conditional interface
    model(cat(source, y), gamma) that `diffusion_loss` uses: the source channels are dropped."""

    def unconditional(x: Tensor, gamma: Tensor) -> Tensor:
        return model(x[:, -3:], gamma)

    return unconditional


@torch.no_grad()
def impute(
    model: Callable[[Tensor, Tensor], Tensor],
    source: Tensor,
    mask: Tensor,
    config: SamplerConfig = SamplerConfig(),
    generator: Generators = None,
    progress: bool = True,
) -> Tensor:
    """Inpaint with an unconditional model (called as model(y [B, 3, H, W], gamma [B])) by replacement.

    At the start and after every update to noise level gamma, the known pixels (mask = 0) become
    sqrt(gamma) * source + sqrt(1 - gamma) * fresh noise, i.e. a draw of q(y_gamma | source); the
    last level is gamma = 1, so the known pixels of the result are exactly the source's. Any
    sampler of `SamplerConfig` drives the updates. `generator` as in `sample`.
    """
    if mask is None or not bool(has_mask(mask).all()):
        raise ValueError("imputation needs a mask with missing pixels for every image: the unconditional model "
                         "sees no source, so tasks without a mask (colorization, JPEG, super-resolution) cannot use it")
    device = source.device
    gammas = config.gammas().tolist()
    known = mask <= 0.5

    def replace_known(y: Tensor, gamma: float) -> Tensor:
        if gamma >= 1.0:
            return torch.where(known, source, y)
        noised = math.sqrt(gamma) * source + math.sqrt(1 - gamma) * randn(source.shape, generator, device)
        return torch.where(known, noised, y)

    denoise = _Denoiser(model, source[:, :0], config.clip_x0)  # no condition channels: the net sees y alone
    y = replace_known(randn(source.shape, generator, device), gammas[0])
    x0_previous = None
    for i in tqdm(range(len(gammas) - 1), desc=f"imputation ({config.name})", disable=not progress, leave=False):
        eps, x0 = denoise(y, gammas[i])
        y, x0_previous = _sampler_step(config, y, eps, x0, x0_previous, gammas, i, generator)
        y = replace_known(y, gammas[i + 1])
    return y
