"""Make the fixtures of tests/test_import_public.py from the public reproduction's own code.

The public reproduction is github.com/Janspiry/Palette-Image-to-Image-Diffusion-Models (MIT
licence). This script needs a checkout of it (the fixtures were made at commit
136b29f58d0af6e5db9f3655d2891f5a855fcdaa) and is NOT run by the tests: it documents how the
files beside it were made, so they can be remade or checked. Its code is imported from that
checkout at run time; nothing of it is copied here.

    git clone https://github.com/Janspiry/Palette-Image-to-Image-Diffusion-Models /tmp/public
    python tests/data/public_reproduction/make_fixtures.py /tmp/public

It writes, beside itself:

- `config.json`: a config in that project's own layout (JSON with // comments) for a small
  network: width 8, multipliers (4, 4) (32 channels: their GroupNorm has 32 groups), one res
  block per level, 16 channels per attention head (2 heads), 16x16 images, and `attn_res`
  [2, 16]: their code compares attn_res with the down-sampling factor, so it attends at level 1
  (factor 2, 8x8 maps) and nowhere for 16 (no level has that factor, although 16 is the size of
  level 0's maps). Its noise schedules are shorter than the paper's (train: linear 1e-6..0.01 in
  100 steps; test: linear 1e-4..0.2 in 50 steps), so their departures are named.
- `8_Network.pth`: the state dict of their `Network` built from that config, as their trainer
  saves it (`{epoch}_Network.pth`: the U-Net under `denoise_fn.`, then the six noise-schedule
  buffers its training phase registers). Every parameter is random (seed 0), including the
  layers their code zero-initialises, and rounded to float16, the dtype it is stored in (their
  trainer stores float32; float16 halves the fixture to about 600 KB, and loading it into their
  network or ours gives the same float32 values).
- `outputs.pt`: fixed inputs and what their code makes of them, in float32:
  `forward`: y_noisy [3, 3, 16, 16], condition [3, 3, 16, 16], gamma [3] -> eps
  (their `denoise_fn(torch.cat([condition, y_noisy], 1), gamma)`);
  `steps`: for t = 30 (of 50) and t = 0 (the last step), y_t, condition, t, the noise z their
  `p_sample` drew, and its output y_{t-1} (their posterior mean of a clipped x0 estimate plus
  their clipped posterior standard deviation times z; no noise at t = 0), with `test_gammas`,
  their float32 gammas of the test schedule, and `clipped`, the fraction of x0 values their
  clamp changed at that step (so the test exercises the clip).
- `full_size_networks.json`: for their configs inpainting_celebahq and inpainting_places2 (the
  released CelebA-HQ and Places2 inpainting models), the network part of each config and the
  names and shapes of their `Network`'s state dict ({key: shape}; no weights), the EMA file's
  keys being the same without the six schedule buffers.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
COMMIT = "136b29f58d0af6e5db9f3655d2891f5a855fcdaa"
SCHEDULE_BUFFERS = ("gammas", "sqrt_recip_gammas", "sqrt_recipm1_gammas", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")

CONFIG_TEXT = """{
    "name": "tiny_public_inpainting", // a small network for tests, in the public reproduction's layout
    "gpu_ids": [0],
    "seed": -1,
    "model": {
        "which_model": {
            "name": ["models.model", "Palette"],
            "args": {
                "sample_num": 8,
                "task": "inpainting",
                "ema_scheduler": {
                    "ema_start": 1,
                    "ema_iter": 1,
                    "ema_decay": 0.9999
                },
                "optimizers": [
                    { "lr": 5e-5, "weight_decay": 0}
                ]
            }
        },
        "which_networks": [
            {
                "name": ["models.network", "Network"], // their Network: the U-Net is its denoise_fn
                "args": {
                    "init_type": "kaiming",
                    "module_name": "guided_diffusion", // sr3 | guided_diffusion
                    "unet": {
                        "in_channel": 6,
                        "out_channel": 3,
                        "inner_channel": 8,
                        "channel_mults": [
                            4,
                            4
                        ],
                        "attn_res": [
                            2, // a down-sampling factor: level 1, 8x8 maps
                            16 // no level has this factor: no attention (16 is level 0's map size)
                        ],
                        "num_head_channels": 16,
                        "res_blocks": 1,
                        "dropout": 0.2,
                        "image_size": 16
                    },
                    "beta_schedule": {
                        "train": {
                            "schedule": "linear",
                            "n_timestep": 100,
                            "linear_start": 1e-6,
                            "linear_end": 0.01
                        },
                        "test": {
                            "schedule": "linear",
                            "n_timestep": 50,
                            "linear_start": 1e-4,
                            "linear_end": 0.2
                        }
                    }
                }
            }
        ],
        "which_losses": ["mse_loss"],
        "which_metrics": ["mae"]
    }
}
"""

FULL_SIZE_CONFIGS = ("inpainting_celebahq", "inpainting_places2")


def their_json(text: str) -> dict:
    """Their config parser's reading (core/praser.py): drop everything after // on each line."""
    return json.loads("".join(line.split("//")[0] + "\n" for line in text.splitlines()),
                      object_pairs_hook=OrderedDict)


def network_args(config: dict) -> dict:
    return config["model"]["which_networks"][0]["args"]


def build_network(config: dict, Network):  # noqa: N803 (their class)
    args = network_args(config)
    return Network(unet=args["unet"], beta_schedule=args["beta_schedule"], module_name=args["module_name"])


def randomize(network: nn.Module, seed: int = 0) -> None:
    """Random values for every parameter (the zero-initialised ones too), rounded to float16:
    convolution and linear weights ~ N(0, 1/fan_in), GroupNorm scales 1 + N(0, 0.2^2), biases
    N(0, 0.1^2)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            for name, parameter in module.named_parameters(recurse=False):
                noise = torch.randn(parameter.shape, generator=generator)
                if isinstance(module, nn.GroupNorm) and name == "weight":
                    value = 1 + 0.2 * noise
                elif name == "bias":
                    value = 0.1 * noise
                else:
                    value = noise / (parameter[0].numel() ** 0.5)
                parameter.copy_(value.half().float())


def small_fixture(Network) -> None:  # noqa: N803
    config = their_json(CONFIG_TEXT)
    torch.manual_seed(0)
    network = build_network(config, Network)
    randomize(network)
    network.set_new_noise_schedule(device=torch.device("cpu"), phase="train")  # what their trainer saves
    state = network.state_dict()
    stored = OrderedDict((key, value if key in SCHEDULE_BUFFERS else value.half()) for key, value in state.items())
    (HERE / "config.json").write_text(CONFIG_TEXT)
    torch.save(stored, HERE / "8_Network.pth")

    # Their loader (strict=False, as their trainer loads): the float16 file into a fresh float32 network.
    network = build_network(config, Network)
    result = network.load_state_dict(torch.load(HERE / "8_Network.pth", weights_only=True), strict=False)
    assert not result.missing_keys and set(result.unexpected_keys) == set(SCHEDULE_BUFFERS), result
    network.eval()
    generator = torch.Generator().manual_seed(1)
    y_noisy = torch.randn(3, 3, 16, 16, generator=generator)
    condition = torch.rand(3, 3, 16, 16, generator=generator) * 2 - 1
    gamma = torch.tensor([1e-3, 0.5, 0.999])
    with torch.no_grad():
        eps = network.denoise_fn(torch.cat([condition, y_noisy], dim=1), gamma)

    network.set_new_noise_schedule(device=torch.device("cpu"), phase="test")
    steps = []
    for index, t_value in enumerate((30, 0)):
        y_t = torch.randn(2, 3, 16, 16, generator=generator)
        step_condition = torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1
        t = torch.full((2,), t_value, dtype=torch.long)
        torch.manual_seed(100 + index)
        y_previous = network.p_sample(y_t, t, y_cond=step_condition)
        torch.manual_seed(100 + index)
        noise = torch.randn_like(y_t)  # the draw p_sample made (its only use of the RNG in eval mode)
        with torch.no_grad():  # check the noise by redoing their step from their own pieces
            mean, log_variance = network.p_mean_variance(y_t, t, clip_denoised=True, y_cond=step_condition)
            redone = mean + (noise if t_value > 0 else torch.zeros_like(noise)) * (0.5 * log_variance).exp()
            assert torch.equal(redone, y_previous), "p_sample drew its noise differently"
            gamma_t = network.gammas[t].view(-1, 1, 1, 1)
            raw = network.predict_start_from_noise(
                y_t, t, network.denoise_fn(torch.cat([step_condition, y_t], dim=1), network.gammas[t]))
            clipped = (raw.abs() > 1).float().mean().item()
        steps.append({"t": t, "y_t": y_t, "condition": step_condition, "noise": noise, "y_previous": y_previous,
                      "gamma_t": gamma_t.flatten(), "clipped": clipped})
        print(f"t={t_value}: {100 * clipped:.1f}% of x0 clipped")
    torch.save({"commit": COMMIT, "forward": {"y_noisy": y_noisy, "condition": condition, "gamma": gamma, "eps": eps},
                "steps": steps, "test_gammas": network.gammas.clone()}, HERE / "outputs.pt")


def full_size_fixture(checkout: Path, Network) -> None:  # noqa: N803
    networks = OrderedDict()
    for name in FULL_SIZE_CONFIGS:
        config = their_json((checkout / "config" / f"{name}.json").read_text())
        with torch.device("meta"):  # shapes only, no memory
            network = build_network(config, Network)
        network.set_new_noise_schedule(device=torch.device("meta"), phase="train")
        state = network.state_dict()
        model_args = config["model"]["which_model"]["args"]
        args = network_args(config)
        networks[name] = {
            "config": {  # the network part of their config, in their layout
                "name": config["name"],
                "model": {
                    "which_model": {"args": {"task": model_args["task"], "ema_scheduler": model_args["ema_scheduler"],
                                             "optimizers": model_args["optimizers"]}},
                    "which_networks": [{"name": config["model"]["which_networks"][0]["name"],
                                        "args": {"module_name": args["module_name"], "unet": args["unet"],
                                                 "beta_schedule": args["beta_schedule"]}}],
                },
            },
            "parameters": sum(p.numel() for p in network.parameters()),
            "state_dict": OrderedDict((key, list(value.shape)) for key, value in state.items()),
        }
        print(f"{name}: {len(state)} keys, {networks[name]['parameters']} parameters")
    (HERE / "full_size_networks.json").write_text(
        json.dumps({"commit": COMMIT, "networks": networks}, indent=1) + "\n")


def main(checkout: str) -> None:
    checkout = Path(checkout).resolve()
    sys.path.insert(0, str(checkout))
    from models.network import Network  # their code

    small_fixture(Network)
    full_size_fixture(checkout, Network)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH_TO_A_CHECKOUT_OF_Janspiry/Palette-Image-to-Image-Diffusion-Models")
    main(sys.argv[1])
