"""The diffusion maths: schedules, Algorithm 1's gamma draws and loss, and every sampler."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from palette import diffusion as D


# ---------------------------------------------------------------------------------------------
# Schedules


def test_schedules_match_their_closed_forms():
    for schedule in (D.TRAINING_SCHEDULE, D.INFERENCE_SCHEDULE):
        betas = schedule.betas()
        expected = [schedule.beta_start + (schedule.beta_end - schedule.beta_start) * i / (schedule.num_steps - 1)
                    for i in range(schedule.num_steps)]
        np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-12)
        log_gamma = np.cumsum(np.log1p(-np.asarray(expected)))
        np.testing.assert_allclose(schedule.gammas().log().numpy(), log_gamma, rtol=1e-10)
    # The facts docs/paper.md quotes for these two schedules.
    assert D.TRAINING_SCHEDULE.gammas()[-1].item() == pytest.approx(4.4e-5, rel=0.05)
    inference = D.INFERENCE_SCHEDULE.gammas()
    assert inference[-1].item() == pytest.approx(7e-21, rel=0.1)
    assert int((inference > 0.5).sum()) == 123
    assert int((inference < D.TRAINING_SCHEDULE.gammas()[-1]).sum()) == 532


def test_training_gamma_lies_in_its_interval_and_t_is_uniform():
    schedule = D.LinearSchedule(0.05, 0.3, 6)
    bounds = torch.cat([torch.ones(1, dtype=torch.float64), schedule.gammas()])
    gamma = D.sample_training_gamma(30000, torch.Generator().manual_seed(0), schedule).double()
    assert gamma.min() >= bounds[-1] - 1e-7 and gamma.max() <= 1.0
    # Interval t holds gamma in [gamma_t, gamma_{t-1}]: each interval must be equally likely,
    # and draws must spread over the whole interval (uniform within it).
    interval = torch.bucketize(-gamma, -bounds[1:-1].float().double(), right=False)
    counts = torch.bincount(interval, minlength=6).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3
    first = gamma[interval == 0]
    position = (1 - first) / (1 - bounds[1])
    assert stats.kstest(position.numpy(), "uniform").pvalue > 1e-3


def test_training_gamma_is_reproducible_for_a_seed():
    a = D.sample_training_gamma(8, torch.Generator().manual_seed(3))
    b = D.sample_training_gamma(8, torch.Generator().manual_seed(3))
    c = D.sample_training_gamma(8, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------------------------------------
# Algorithm 1: the loss


class Recorder(torch.nn.Module):
    """Predicts zero noise and remembers what it saw."""

    def forward(self, x, gamma):
        self.x, self.gamma = x, gamma
        return torch.zeros_like(x[:, 3:])


def test_loss_of_a_zero_predictor_is_the_noise_power_whatever_the_mask_size():
    torch.manual_seed(0)
    target = torch.rand(64, 3, 16, 16) * 2 - 1
    source = target.mean(1, keepdim=True).expand(-1, 3, -1, -1).clone()
    small = torch.zeros(64, 1, 16, 16)
    small[..., :2, :2] = 1  # 1.6 % of the pixels
    large = torch.zeros(64, 1, 16, 16)
    large[..., :, :12] = 1
    model = Recorder()
    for mask in (None, small, large):
        l2 = D.diffusion_loss(model, source, target, mask, "l2", torch.Generator().manual_seed(1))
        l1 = D.diffusion_loss(model, source, target, mask, "l1", torch.Generator().manual_seed(1))
        # E[eps^2] = 1 and E|eps| = sqrt(2 / pi), averaged over generated pixels only.
        assert l2.item() == pytest.approx(1.0, abs=0.15)
        assert l1.item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.1)


def test_loss_network_input_for_masked_samples():
    target = torch.rand(4, 3, 8, 8) * 2 - 1
    source = target.clone()
    mask = torch.zeros(4, 1, 8, 8)
    mask[:2, :, 2:6, 2:6] = 1  # samples 2 and 3 carry no mask (all zeros)
    source = source * (1 - mask)
    model = Recorder()
    D.diffusion_loss(model, source, target, mask, generator=torch.Generator().manual_seed(0))
    x_source, y_noisy = model.x[:, :3], model.x[:, 3:]
    known = (mask == 0).expand(-1, 3, -1, -1)
    hole = ~known
    # Source: known pixels untouched, missing pixels replaced by unit Gaussian noise.
    assert torch.equal(x_source[known], source[known])
    assert x_source[hole].std().item() == pytest.approx(1.0, abs=0.3)
    assert not torch.equal(x_source[hole], source[hole])
    # Noisy target: clean in the known pixels of masked samples, noisy everywhere else.
    assert torch.equal(y_noisy[:2][known[:2]], target[:2][known[:2]])
    assert not torch.allclose(y_noisy[2:], target[2:])
    assert model.gamma.shape == (4,)


def test_loss_rejects_unknown_loss_type():
    with pytest.raises(ValueError, match="l3"):
        D.diffusion_loss(Recorder(), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), loss_type="l3")


def test_masked_loss_ignores_known_pixels():
    """A network that is wrong only where pixels are known has zero loss on masked samples."""

    class WrongOnKnown(torch.nn.Module):
        def forward(self, x, gamma):
            g = gamma.view(-1, 1, 1, 1)
            # The noise is recoverable from y_noisy where the target is known: it is zero there
            # because y_noisy equals the target; here the net predicts garbage on known pixels.
            eps = (x[:, 3:] - g.sqrt() * TARGET) / (1 - g).sqrt()
            return torch.where(MASK > 0.5, eps, torch.full_like(eps, 7.0))

    global TARGET, MASK
    TARGET = torch.rand(2, 3, 8, 8) * 2 - 1
    MASK = torch.zeros(2, 1, 8, 8)
    MASK[:, :, :, 4:] = 1
    loss = D.diffusion_loss(WrongOnKnown(), TARGET * (1 - MASK), TARGET, MASK, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    loss_unmasked = D.diffusion_loss(WrongOnKnown(), TARGET, TARGET, None, generator=torch.Generator().manual_seed(0))
    assert loss_unmasked.item() > 1.0


# ---------------------------------------------------------------------------------------------
# Samplers


class FixedTinyNet(torch.nn.Module):
    """A fixed, seeded 1x1-conv noise predictor: pins the samplers' maths independently of the U-Net."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.randn(3, 6, generator=g) * 0.4
        self.bias = torch.randn(3, generator=g) * 0.1

    def forward(self, x, gamma):
        # The optimal denoiser for Gaussian data whose mean depends on the input: bounded outputs.
        mean = 0.5 * torch.tanh(torch.einsum("oc,bchw->bohw", self.weight, x) + self.bias.view(1, 3, 1, 1))
        g = gamma.view(-1, 1, 1, 1)
        return (1 - g).sqrt() * (x[:, 3:] - g.sqrt() * mean) / (0.25 * g + 1 - g)


def _source():
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1


SAMPLER_CASES = {
    "paper": D.SamplerConfig(),
    "paper_posterior_clipped": D.SamplerConfig(variance="posterior", clip_x0=True),
    "ancestral_50": D.SamplerConfig(name="ancestral", steps=50),
    "ddim_20": D.SamplerConfig(name="ddim", steps=20),
    "ddim_20_eta1": D.SamplerConfig(name="ddim", steps=20, eta=1.0),
    "dpm_solver_pp_10": D.SamplerConfig(name="dpm_solver_pp", steps=10),
}

# (sum, mean of absolute values) of each sampler's output for FixedTinyNet, seed 1234.
PINNED = {
    "paper": (18.290552, 0.481680),
    "paper_posterior_clipped": (14.868529, 0.452078),
    "ancestral_50": (10.273338, 0.498613),
    "ddim_20": (-0.964492, 0.379254),
    "ddim_20_eta1": (13.538722, 0.334206),
    "dpm_solver_pp_10": (-1.060772, 0.374325),
}


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_sampler_pinned_to_fixed_seed_numbers(case):
    out = D.sample(FixedTinyNet(), _source(), None, SAMPLER_CASES[case], torch.Generator().manual_seed(1234), progress=False)
    assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()
    total, mean_abs = PINNED[case]
    assert out.double().sum().item() == pytest.approx(total, rel=1e-4, abs=1e-3)
    assert out.double().abs().mean().item() == pytest.approx(mean_abs, rel=1e-4)


class Oracle(torch.nn.Module):
    """The exact noise predictor when the data is one known image x*: eps = (y - sqrt(g) x*) / sqrt(1-g)."""

    def __init__(self, clean):
        super().__init__()
        self.clean = clean

    def forward(self, x, gamma):
        g = gamma.double().view(-1, 1, 1, 1)
        return ((x[:, 3:].double() - g.sqrt() * self.clean) / (1 - g).sqrt()).float()


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_every_sampler_recovers_the_image_from_an_exact_noise_predictor(case):
    clean = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 1.6 - 0.8
    out = D.sample(Oracle(clean), _source(), None, SAMPLER_CASES[case], torch.Generator().manual_seed(0), progress=False)
    torch.testing.assert_close(out, clean.float(), atol=2e-3, rtol=0)


class GaussianOptimal(torch.nn.Module):
    """The exact noise predictor for data ~ N(0, s^2) per pixel: eps = sqrt(1-g) y / (g s^2 + 1 - g)."""

    def __init__(self, std):
        super().__init__()
        self.std = std

    def forward(self, x, gamma):
        g = gamma.view(-1, 1, 1, 1)
        return (1 - g).sqrt() * x[:, 3:] / (g * self.std**2 + 1 - g)


@pytest.mark.parametrize(
    "config",
    [D.SamplerConfig(), D.SamplerConfig(name="ancestral", steps=250, variance="posterior"),
     D.SamplerConfig(name="ddim", steps=250), D.SamplerConfig(name="dpm_solver_pp", steps=20)],
    ids=["paper", "ancestral_posterior", "ddim", "dpm_solver_pp"],
)
def test_samplers_draw_from_the_data_distribution(config):
    """With the optimal denoiser for Gaussian data, samples must have the data's spread.

    (DDIM is first order: at 50 steps it still gives 0.43 for 0.5; DPM-Solver++ gives 0.50 at 20.)
    """
    std = 0.5
    out = D.sample(GaussianOptimal(std), torch.zeros(16, 3, 16, 16), None, config, torch.Generator().manual_seed(0), progress=False)
    assert out.std().item() == pytest.approx(std, rel=0.05)
    assert out.mean().item() == pytest.approx(0.0, abs=0.02)


@pytest.mark.parametrize("case", ["paper", "ddim_20_eta1", "dpm_solver_pp_10"])
def test_inpainting_keeps_known_pixels_exactly(case):
    source = _source()
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 2:6, 1:7] = 1
    mask[1, :, :, 4:] = 1
    source = source * (1 - mask)
    out = D.sample(FixedTinyNet(), source, mask, SAMPLER_CASES[case], torch.Generator().manual_seed(0), progress=False)
    known = (mask == 0).expand(-1, 3, -1, -1)
    assert torch.equal(out[known], source[known])
    assert (out[~known] - source[~known]).abs().mean() > 0.05


def test_sampling_is_reproducible_and_independent_of_batch_composition():
    config = D.SamplerConfig(name="ddim", steps=10, eta=1.0)
    source = _source()
    gens = lambda: [torch.Generator().manual_seed(s) for s in (10, 11)]  # noqa: E731
    both = D.sample(FixedTinyNet(), source, None, config, gens(), progress=False)
    again = D.sample(FixedTinyNet(), source, None, config, gens(), progress=False)
    second_alone = D.sample(FixedTinyNet(), source[1:], None, config, [torch.Generator().manual_seed(11)], progress=False)
    assert torch.equal(both, again)
    torch.testing.assert_close(both[1:], second_alone)
    other_seed = D.sample(FixedTinyNet(), source, None, config, torch.Generator().manual_seed(99), progress=False)
    assert not torch.allclose(both, other_seed)


def test_sampler_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="unknown sampler 'ddpm'"):
        D.SamplerConfig(name="ddpm")
    with pytest.raises(ValueError, match="unknown sampler keys"):
        D.SamplerConfig.from_dict({"name": "ddim", "step": 10})
    with pytest.raises(ValueError, match="ancestral"):
        D.SamplerConfig(name="paper", steps=100)
    config = D.SamplerConfig(name="dpm_solver_pp", steps=25)
    assert D.SamplerConfig.from_dict(config.to_dict()) == config
    gammas = config.gammas()
    assert len(gammas) == 26 and gammas[-1] == 1.0 and torch.all(gammas[1:] > gammas[:-1])
    assert gammas[0].item() == pytest.approx(D.INFERENCE_SCHEDULE.gammas()[-1].item(), rel=1e-9)
    assert gammas[-2].item() == pytest.approx(D.INFERENCE_SCHEDULE.gammas()[0].item(), rel=1e-12)
    log_snr = (gammas[:-1] / (1 - gammas[:-1])).log()
    torch.testing.assert_close(log_snr.diff(), torch.full((24,), (log_snr[-1] - log_snr[0]).item() / 24, dtype=torch.float64))
    index_spaced = D.SamplerConfig(name="ancestral", steps=4, spacing="index").gammas()
    torch.testing.assert_close(index_spaced[:-1], D.INFERENCE_SCHEDULE.gammas()[[999, 666, 333, 0]])


def test_sampler_presets_are_the_paper_sampler_and_the_fast_default():
    from palette.sampler_presets import SAMPLER_PRESETS, TRAINING_NOISE_RANGE

    assert D.SamplerConfig.from_dict({"preset": "paper"}) == D.SamplerConfig()
    fast = D.SamplerConfig.from_dict({"preset": "fast"})
    assert (fast.name, fast.steps, fast.clip_x0, fast.variance) == ("dpm_solver_pp", 50, True, "posterior")
    assert TRAINING_NOISE_RANGE == {"beta_start": D.TRAINING_SCHEDULE.beta_start,
                                    "beta_end": D.TRAINING_SCHEDULE.beta_end,
                                    "schedule_steps": D.TRAINING_SCHEDULE.num_steps}
    overridden = D.SamplerConfig.from_dict({"preset": "fast", "name": "ddim", "steps": 7})
    assert (overridden.name, overridden.steps, overridden.clip_x0, overridden.beta_end) == ("ddim", 7, True, 0.01)
    assert set(SAMPLER_PRESETS) == {"paper", "fast"}
    with pytest.raises(ValueError, match="unknown sampler preset 'quick'"):
        D.SamplerConfig.from_dict({"preset": "quick"})


# ----------------------------------------------------------------------------- prediction target "v"
def oracle(target: torch.Tensor, prediction: str):
    """A network that knows the clean target: from its input's noisy target and gamma it returns
    the exact eps or v."""

    def network(x, gamma):
        g = gamma.view(-1, 1, 1, 1).double()
        y = x[:, -3:].double()
        eps = (y - g.sqrt() * target.double()) / (1 - g).sqrt()
        return (eps if prediction == "eps" else g.sqrt() * eps - (1 - g).sqrt() * target.double()).float()

    return network


def test_the_v_loss_is_zero_for_the_exact_v_and_not_for_the_exact_eps():
    target = torch.rand(4, 3, 8, 8) * 2 - 1
    source = torch.zeros_like(target)
    for prediction in ("eps", "v"):
        exact = D.diffusion_loss(oracle(target, prediction), source, target, generator=torch.Generator().manual_seed(1),
                                 prediction=prediction)
        assert exact.item() < 1e-8
    wrong = D.diffusion_loss(oracle(target, "eps"), source, target, generator=torch.Generator().manual_seed(1), prediction="v")
    assert wrong.item() > 0.1
    with pytest.raises(ValueError, match="prediction must be one of"):
        D.diffusion_loss(oracle(target, "eps"), source, target, prediction="x0")


def test_a_v_network_reaches_the_samplers_as_the_exact_noise_and_clean_image():
    target = torch.rand(2, 3, 8, 8) * 2 - 1
    eps = torch.randn(2, 3, 8, 8)
    for gamma in (4.4e-5, 0.3, 0.999):
        y = math.sqrt(gamma) * target + math.sqrt(1 - gamma) * eps
        model = D.noise_prediction(oracle(target, "v"), "v")
        predicted_eps, x0 = D._Denoiser(model, torch.zeros_like(y), clip_x0=False)(y, gamma)
        torch.testing.assert_close(predicted_eps, eps, atol=1e-4, rtol=0)
        # x0 at the noisiest level divides float32 rounding by sqrt(gamma): looser there
        torch.testing.assert_close(x0, target, atol=5e-3 if gamma < 1e-3 else 1e-4, rtol=0)
    network = oracle(target, "eps")
    assert D.noise_prediction(network, "eps") is network


def test_prediction_v_needs_the_diffusion_objective_and_leaves_eps_digests_alone():
    from palette.config import ConfigError, load_config, work_key

    with pytest.raises(ConfigError, match="'prediction' has value 'v', which needs objective 'diffusion'"):
        load_config({"task": "jpeg", "preset": "tiny", "objective": "regression", "prediction": "v"})
    eps = {"task": "jpeg", "preset": "tiny"}
    assert work_key(eps) == work_key(eps | {"prediction": "eps"})  # digests of runs made before the key
    assert work_key(eps) != work_key(eps | {"prediction": "v"})


# ----------------------------------------------------------------------------- residual diffusion
def test_the_residual_loss_is_zero_for_the_network_that_knows_target_minus_source():
    target = torch.rand(4, 3, 8, 8) * 2 - 1
    source = torch.rand(4, 3, 8, 8) * 2 - 1
    residual = oracle(target - source, "eps")
    assert D.diffusion_loss(residual, source, target, generator=torch.Generator().manual_seed(1), residual=True).item() < 1e-8
    assert D.diffusion_loss(residual, source, target, generator=torch.Generator().manual_seed(1)).item() > 0.1
    with pytest.raises(ValueError, match="residual diffusion needs a task without a mask"):
        D.diffusion_loss(residual, source, target, torch.ones(4, 1, 8, 8), residual=True)


@pytest.mark.parametrize("case", ["paper_posterior_clipped", "ancestral_50", "dpm_solver_pp_10"])
def test_residual_sampling_adds_the_source_back_and_clips_in_image_space(case):
    """Target 0.9 on a source of -0.9: the residual 1.8 lies outside [-1, 1], so clipping the
    residual instead of the image would give 0.1."""
    source = torch.full((2, 3, 8, 8), -0.9)
    target = torch.full((2, 3, 8, 8), 0.9)
    target[:, :, :4] = -0.5
    out = D.sample(Oracle(target - source), source, None, SAMPLER_CASES[case], torch.Generator().manual_seed(0),
                   progress=False, residual=True)
    torch.testing.assert_close(out, target, atol=2e-3, rtol=0)


def test_residual_needs_a_task_without_a_mask_and_leaves_old_digests_alone():
    from palette.config import ConfigError, load_config, work_key

    for bad in ({"task": "inpainting"}, {"task": "multitask"}, {"task": "jpeg", "objective": "regression"}):
        with pytest.raises(ConfigError, match="'residual' is true"):
            load_config({"preset": "tiny", "residual": True, **bad})
    for task in ("colorization", "jpeg", "super_resolution", "paired"):
        assert load_config({"task": task, "preset": "tiny", "residual": True}).residual
    plain = {"task": "jpeg", "preset": "tiny"}
    assert work_key(plain) == work_key(plain | {"residual": False})
    assert work_key(plain) != work_key(plain | {"residual": True})


# ----------------------------------------------------------------------------- noise scale (S_noise)
def test_noise_scale_scales_the_fresh_noise_of_stochastic_steps_only():
    source = _source()
    run = lambda **kw: D.sample(FixedTinyNet(), source, None, D.SamplerConfig(**kw),  # noqa: E731
                                torch.Generator().manual_seed(3), progress=False)
    assert torch.equal(run(name="ancestral", steps=20), run(name="ancestral", steps=20, noise_scale=1.0))
    assert not torch.allclose(run(name="ancestral", steps=20), run(name="ancestral", steps=20, noise_scale=0.5))
    assert torch.equal(run(name="ddim", steps=20), run(name="ddim", steps=20, noise_scale=0.5))  # eta 0: no noise
    with pytest.raises(ValueError, match="noise_scale must be in"):
        D.SamplerConfig(noise_scale=-0.1)


def test_a_lower_noise_scale_gives_the_gaussian_optimal_sampler_a_smaller_spread():
    """Data N(0, 0.5^2), the exact denoiser: scale 1 draws the data's spread, 0.5 a smaller one."""
    spread = {scale: D.sample(GaussianOptimal(0.5), torch.zeros(16, 3, 16, 16), None,
                              D.SamplerConfig(name="ancestral", steps=250, variance="posterior", noise_scale=scale),
                              torch.Generator().manual_seed(0), progress=False).std().item() for scale in (1.0, 0.5)}
    assert spread[1.0] == pytest.approx(0.5, rel=0.05)
    assert spread[0.5] < 0.8 * spread[1.0]
