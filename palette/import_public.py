"""Import a checkpoint of the public reproduction into this project's checkpoint format.

The public reproduction (github.com/Janspiry/Palette-Image-to-Image-Diffusion-Models, docs/paper.md)
saves, per epoch, `{epoch}_Network.pth` and `{epoch}_Network_ema.pth`: the state dict of its
`Network`, whose U-Net (guided diffusion's, models/guided_diffusion_modules/unet.py) sits under
`denoise_fn.`; the non-EMA file also holds the six noise-schedule buffers of its training phase.
Its settings are in its JSON config (with // comments): the U-Net under
model.which_networks[0].args.unet, the noise schedules under .beta_schedule, the task under
model.which_model.args.task. `import_checkpoint` turns that into a checkpoint `palette infer`,
`palette sample` and the workflow load like one trained here (docs/import.md):

- The network is our `public` U-Net preset with the overrides that make it theirs exactly:
  `noise_embedding: raw_gamma` (their sinusoid of gamma itself), and attention where theirs
  really has it. Their `attn_res` is compared with the down-sampling factor of a level (1, 2,
  4, ...), not with its feature-map size, so factor f becomes our resolution image_size / f,
  and an entry that is no level's factor (their released configs' 16, with four levels) puts
  attention nowhere; their middle block always attends, as ours does. Everything else maps one
  to one (scale-shift GroupNorm with 32 groups, BigGAN-style res blocks for resampling, the
  same block order, skips and output layer); the only weights that change form are the
  attention's: their 1-D convolutions become our 1x1 ones, and their legacy q/k/v layout (per
  head: q, k, v) is reordered to ours (q, k, v, each split in heads).
- The conditioning order is the same (their input is cat([condition, y_t]), ours
  cat([source, y_noisy])), so no channel moves.
- Their sampler (Network.p_sample over the config's test schedule: the posterior variance and x0
  clamped to [-1, 1]) is recorded as a sampler setting of palette.diffusion.SamplerConfig; it and
  their training schedule are named where they depart from the paper.
- Weights: the EMA file's when given (`ema`), else the network file's; the checkpoint's
  `imported.weights` says which ("ema" or "network"). The public reproduction's own test code
  samples from the network, not the EMA, and its reported FID/IS are the network's.

A file of another layout is refused with one line naming the first key or shape that does not
fit the network its config describes, before anything is written.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

# torch-free, shared with the workflow's checks (palette.external)
from palette.public_config import TASKS, read_public_config, strip_json_comments  # noqa: F401
from palette.public_config import lookup as _lookup

PUBLIC_REPOSITORY = "github.com/Janspiry/Palette-Image-to-Image-Diffusion-Models"
IMPORTED_KIND = "imported"  # the checkpoint's `kind` (trained ones say "training" or "final")
UNET_PREFIX = "denoise_fn."
# Buffers their Network registers for its training phase (set_new_noise_schedule); only in the
# non-EMA file (the EMA copy is made before they exist). Not weights: checked, then dropped.
SCHEDULE_BUFFERS = ("gammas", "sqrt_recip_gammas", "sqrt_recipm1_gammas", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")

# Their UNet's keyword arguments and defaults (models/guided_diffusion_modules/unet.py); the
# first six have no default.
_REQUIRED_UNET_KEYS = ("in_channel", "out_channel", "inner_channel", "res_blocks", "attn_res", "image_size")
_UNET_DEFAULTS = {
    "dropout": 0, "channel_mults": [1, 2, 4, 8], "conv_resample": True, "use_checkpoint": False,
    "use_fp16": False, "num_heads": 1, "num_head_channels": -1, "num_heads_upsample": -1,
    "use_scale_shift_norm": True, "resblock_updown": True, "use_new_attention_order": False,
}
# Switches that change their network's layout in ways our U-Net does not have: only these values.
# (conv_resample only matters without resblock_updown; use_checkpoint and use_fp16 change no weight.)
_FIXED_UNET_SETTINGS = {
    "use_scale_shift_norm": (True, "their res blocks then add the embedding instead of scale-shift GroupNorm"),
    "resblock_updown": (True, "their up/down-sampling is then a plain layer instead of a res block"),
}
# Their make_beta_schedule's defaults (models/network.py).
_SCHEDULE_DEFAULTS = {"linear_start": 1e-6, "linear_end": 1e-2}

# Our U-Net's sub-module names -> theirs, inside a res block or an attention block.
_BLOCK_PARTS = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "embedding_projection": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "skip": "skip_connection",
    "norm": "norm", "to_qkv": "qkv", "projection": "proj_out",
}


# ----------------------------------------------------------------------------------------------
# Their config


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class PublicSettings:
    """What an import takes from their config."""

    name: str
    task: str  # ours
    unet: dict  # their unet block, defaults filled in
    overrides: dict  # build_unet("public", **overrides) is their network
    attention_resolutions: tuple  # ours, where their encoder/decoder attends
    legacy_attention: bool  # their q/k/v channel order is per head (QKVAttentionLegacy)
    train_schedule: dict | None
    test_schedule: dict
    lr: float | None
    ema_decay: float | None


def settings_from_config(config: dict, origin: str) -> PublicSettings:
    """Read and check the network, schedules and task of their config (`origin` names it)."""
    network_path = "model.which_networks.0.args"
    module_name = _lookup(config, f"{network_path}.module_name", origin, default="sr3")
    if module_name != "guided_diffusion":
        raise ValueError(f"{origin}: key '{network_path}.module_name' is {module_name!r} (sr3 when not given); only "
                         "its guided_diffusion U-Net can be imported")
    unet_given = _lookup(config, f"{network_path}.unet", origin)
    if not isinstance(unet_given, dict):
        raise ValueError(f"{origin}: key '{network_path}.unet' is not an object")
    unknown = sorted(set(unet_given) - set(_REQUIRED_UNET_KEYS) - set(_UNET_DEFAULTS))
    if unknown:
        raise ValueError(f"{origin}: key '{network_path}.unet.{unknown[0]}' is not an argument of the public "
                         f"reproduction's guided-diffusion U-Net")
    for key in _REQUIRED_UNET_KEYS:
        if key not in unet_given:
            raise ValueError(f"{origin}: no key '{network_path}.unet.{key}' (their U-Net needs it)")
    unet = {**_UNET_DEFAULTS, **unet_given}
    where = f"{origin}: key '{network_path}.unet"
    for key, (wanted, why) in _FIXED_UNET_SETTINGS.items():
        if unet[key] != wanted:
            raise ValueError(f"{where}.{key}' is {unet[key]!r}: our U-Net cannot express that ({why})")
    for key in ("in_channel", "out_channel", "inner_channel", "res_blocks", "image_size"):
        if not _is_int(unet[key]) or unet[key] < (0 if key == "res_blocks" else 1):
            raise ValueError(f"{where}.{key}' is {unet[key]!r}: expected a positive whole number")
    if (unet["in_channel"], unet["out_channel"]) != (6, 3):
        raise ValueError(f"{where}.in_channel' and 'out_channel' are {unet['in_channel']} and {unet['out_channel']}: "
                         "this project's tasks map an RGB source and an RGB noisy image (6 channels) to RGB noise (3)")
    mults = unet["channel_mults"]
    if not isinstance(mults, list) or not mults or not all(_is_int(m) and m > 0 for m in mults):
        raise ValueError(f"{where}.channel_mults' is {mults!r}: expected a list of positive whole numbers")
    attn_res = unet["attn_res"]
    if not isinstance(attn_res, list) or not all(_is_int(f) for f in attn_res):
        raise ValueError(f"{where}.attn_res' is {attn_res!r}: expected a list of whole numbers")
    if not isinstance(unet["dropout"], (int, float)) or isinstance(unet["dropout"], bool):
        raise ValueError(f"{where}.dropout' is {unet['dropout']!r}: expected a number")

    # Their level l (0 = full size) attends when its down-sampling factor 2^l is in attn_res.
    image_size, levels = unet["image_size"], len(mults)
    if image_size % 2 ** (levels - 1):
        raise ValueError(f"{where}.image_size' is {image_size}: not divisible by 2^{levels - 1} ({levels} levels)")
    attention_levels = [level for level in range(levels) if 2**level in attn_res]
    resolutions = tuple(image_size // 2**level for level in attention_levels)
    head_channels = _head_channels(unet, attention_levels, where)
    ours = {
        "in_channels": unet["in_channel"], "out_channels": unet["out_channel"], "base_channels": unet["inner_channel"],
        "channel_mults": list(mults), "num_res_blocks": unet["res_blocks"], "attention_resolutions": list(resolutions),
        "image_size": image_size, "num_head_channels": head_channels, "dropout": float(unet["dropout"]),
        "noise_embedding": "raw_gamma", "num_groups": 32, "attention_type": "global", "middle_context_block": True,
    }
    preset = _public_preset()
    overrides = {key: value for key, value in ours.items() if _normalised(preset[key]) != _normalised(value)}

    task = _lookup(config, "model.which_model.args.task", origin)
    if task not in TASKS:
        raise ValueError(f"{origin}: key 'model.which_model.args.task' is {task!r}; importable tasks: "
                         f"{', '.join(TASKS)}")
    schedules = _lookup(config, f"{network_path}.beta_schedule", origin)
    test = _schedule(schedules, "test", f"{origin}: key '{network_path}.beta_schedule.test")
    if test["schedule"] != "linear":
        raise ValueError(f"{origin}: key '{network_path}.beta_schedule.test.schedule' is {test['schedule']!r}: "
                         "only linear sampling schedules can be imported (palette.diffusion.SamplerConfig)")
    train = (_schedule(schedules, "train", f"{origin}: key '{network_path}.beta_schedule.train")
             if isinstance(schedules, dict) and "train" in schedules else None)
    lr = _lookup(config, "model.which_model.args.optimizers.0.lr", origin, default=None)
    ema_decay = _lookup(config, "model.which_model.args.ema_scheduler.ema_decay", origin, default=None)
    name = config.get("name")
    return PublicSettings(
        name=name if isinstance(name, str) and name else "public_reproduction", task=TASKS[task], unet=unet,
        overrides=overrides, attention_resolutions=resolutions,
        legacy_attention=not unet["use_new_attention_order"], train_schedule=train, test_schedule=test,
        lr=float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0 else None,
        ema_decay=(float(ema_decay) if isinstance(ema_decay, (int, float)) and not isinstance(ema_decay, bool)
                   and 0 <= ema_decay <= 1 else None),
    )


def _head_channels(unet: dict, attention_levels: list[int], where: str) -> int:
    """Channels per attention head, the same for every attention layer of their network (ours has
    one setting); with num_head_channels -1 theirs has num_heads heads (num_heads_upsample in
    the decoder) whatever the layer's width."""
    if _is_int(unet["num_head_channels"]) and unet["num_head_channels"] > 0:
        return unet["num_head_channels"]
    if unet["num_head_channels"] != -1:
        raise ValueError(f"{where}.num_head_channels' is {unet['num_head_channels']!r}: expected a positive whole "
                         "number, or -1 for num_heads heads")
    width = [unet["inner_channel"] * mult for mult in unet["channel_mults"]]
    heads, upsample = unet["num_heads"], unet["num_heads_upsample"]
    upsample = heads if upsample == -1 else upsample
    layers = [(width[-1], heads)] + [(width[level], heads) for level in attention_levels]
    layers += [(width[level], upsample) for level in attention_levels]
    sizes = {channels // count if _is_int(count) and count > 0 and channels % count == 0 else None
             for channels, count in layers}
    if None in sizes:
        raise ValueError(f"{where}.num_head_channels' is -1: an attention layer's width is then not divisible by "
                         "its number of heads")
    if len(sizes) != 1:
        raise ValueError(f"{where}.num_head_channels' is -1: its attention layers then have {sorted(sizes)} "
                         "channels per head; our U-Net needs one size for all")
    return sizes.pop()


def _schedule(schedules: Any, phase: str, where: str) -> dict:
    """One phase of their beta_schedule, their defaults filled in."""
    given = schedules.get(phase) if isinstance(schedules, dict) else None
    if not isinstance(given, dict):
        raise ValueError(f"{where}' is missing or not an object")
    schedule = {"schedule": given.get("schedule"), **_SCHEDULE_DEFAULTS,
                **{key: given[key] for key in ("n_timestep", "linear_start", "linear_end") if key in given}}
    if not isinstance(schedule["schedule"], str):
        raise ValueError(f"{where}.schedule' is {schedule['schedule']!r}: expected a schedule name (e.g. linear)")
    if not _is_int(schedule.get("n_timestep")) or schedule["n_timestep"] < 2:
        raise ValueError(f"{where}.n_timestep' is {schedule.get('n_timestep')!r}: expected a whole number above 1")
    for key in ("linear_start", "linear_end"):
        value = schedule[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
            raise ValueError(f"{where}.{key}' is {value!r}: expected a number between 0 and 1")
        schedule[key] = float(value)
    return schedule


def _public_preset() -> dict:
    """Every U-Net argument of our `public` preset, the UNet's defaults filled in."""
    from palette.unet import PRESETS, UNet

    defaults = {name: parameter.default for name, parameter in inspect.signature(UNet).parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    return {**defaults, **PRESETS["public"]}


def _normalised(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


# ----------------------------------------------------------------------------------------------
# Their state dict -> ours


def their_key(our_key: str) -> str:
    """The public reproduction's name of one of our U-Net's state-dict keys."""
    head, *rest = our_key.split(".")
    if head == "noise_mlp":
        return UNET_PREFIX + "cond_embed." + ".".join(rest)
    if head == "input_conv":
        return UNET_PREFIX + "input_blocks.0.0." + ".".join(rest)
    if head == "output":
        return UNET_PREFIX + "out." + ".".join(rest)
    if head == "middle":
        block, (part, parameter) = ["middle_block", rest[0]], rest[1:]
    elif head == "encoder":  # their input_blocks.0 is our input_conv
        block, (part, parameter) = ["input_blocks", str(int(rest[0]) + 1), rest[1]], rest[2:]
    elif head == "decoder":
        block, (part, parameter) = ["output_blocks", rest[0], rest[1]], rest[2:]
    else:
        raise KeyError(f"no public-reproduction name for {our_key!r}")
    return UNET_PREFIX + ".".join([*block, _BLOCK_PARTS[part], parameter])


def _is_attention_weight(our_key: str) -> bool:
    """Their attention's q/k/v and output layers are 1-D convolutions: [out, in, 1], ours [out, in, 1, 1]."""
    return our_key.endswith((".to_qkv.weight", ".projection.weight"))


def public_layout(network: torch.nn.Module) -> list[tuple[str, str, tuple[int, ...]]]:
    """(their key, our key, their shape) for every tensor of `network` (ours, built as theirs), in
    the order their state dict lists them (the same module order as ours)."""
    layout = []
    for key, tensor in network.state_dict().items():
        shape = tuple(tensor.shape[:-1]) if _is_attention_weight(key) else tuple(tensor.shape)
        layout.append((their_key(key), key, shape))
    return layout


def _shape(shape) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def convert_state_dict(state: Mapping[str, Any], network: torch.nn.Module, settings: PublicSettings,
                       origin: str) -> dict[str, Tensor]:
    """Their Network's state dict -> our U-Net's (float32), or a ValueError naming the first key or
    shape of `state` (read in its own order, then the missing keys in theirs) that does not fit
    the network `settings` describe. `network` is that network (ours; the meta device will do)."""
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{origin}: not a state dict (a mapping of names to tensors), got {type(state).__name__}")
    from palette.checkpoint import DIGEST_KEY

    if "format" in state and DIGEST_KEY in state:
        raise ValueError(f"{origin}: key 'format' does not fit the public reproduction's network: this is a palette "
                         "checkpoint (written by this project), which needs no import")
    layout = public_layout(network)
    expected = {theirs: (ours, shape) for theirs, ours, shape in layout}
    train = settings.train_schedule
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"{origin}: key {key!r} holds a {type(value).__name__}, not a tensor: not a state dict "
                             "of the public reproduction's Network")
        if key in SCHEDULE_BUFFERS:
            lengths = {settings.test_schedule["n_timestep"], *([train["n_timestep"]] if train else [])}
            if value.ndim != 1 or value.shape[0] not in lengths:
                raise ValueError(f"{origin}: key {key!r} has shape {_shape(value.shape)}, but the config's noise "
                                 f"schedules have {' or '.join(str(n) for n in sorted(lengths))} steps: is this the "
                                 "config it was trained with?")
            continue
        if key not in expected:
            hint = ("" if key.startswith(UNET_PREFIX) else
                    f" (the public reproduction's Network file keeps its U-Net under '{UNET_PREFIX}')")
            raise ValueError(f"{origin}: key {key!r} (shape {_shape(value.shape)}) does not fit the public "
                             f"reproduction's network its config describes{hint}")
        if tuple(value.shape) != expected[key][1]:
            raise ValueError(f"{origin}: key {key!r} has shape {_shape(value.shape)}, but the network its config "
                             f"describes has {_shape(expected[key][1])}: is this the config it was trained with?")
        if not value.is_floating_point():
            raise ValueError(f"{origin}: key {key!r} holds {value.dtype} values, not floating-point weights")
    for theirs, _, shape in layout:
        if theirs not in state:
            raise ValueError(f"{origin}: has no key {theirs!r} (shape {_shape(shape)}), which the network its config "
                             "describes has")
    _check_training_gammas(state, settings, origin)

    ours_state = network.state_dict()
    converted = {}
    for theirs, ours, _ in layout:
        tensor = state[theirs].to(torch.float32)
        if settings.legacy_attention and ".to_qkv." in ours:
            # Their channels are per head (q, k, v); ours are q, k, v, each split in heads.
            heads = network.get_submodule(ours.rsplit(".", 2)[0]).num_heads
            tensor = tensor.reshape(heads, 3, -1, *tensor.shape[1:]).transpose(0, 1).reshape(tensor.shape)
        our_shape = ours_state[ours].shape if _is_attention_weight(ours) else tensor.shape
        converted[ours] = tensor.reshape(our_shape).contiguous()
    return converted


def _check_training_gammas(state: Mapping[str, Any], settings: PublicSettings, origin: str) -> None:
    """The non-EMA file's `gammas` buffer is the noise schedule it was saved with (their training
    phase): refuse a config whose linear training schedule says otherwise."""
    train, gammas = settings.train_schedule, state.get("gammas")
    if gammas is None or train is None or train["schedule"] != "linear" or gammas.shape[0] != train["n_timestep"]:
        return
    if gammas.device.type == "meta":
        return
    betas = torch.linspace(train["linear_start"], train["linear_end"], train["n_timestep"], dtype=torch.float64)
    wanted = torch.cumprod(1 - betas, dim=0)
    if not torch.allclose(gammas.double(), wanted, rtol=1e-5, atol=1e-7):
        raise ValueError(f"{origin}: key 'gammas' holds another noise schedule than the config's beta_schedule.train "
                         f"(linear {train['linear_start']:g}..{train['linear_end']:g}, {train['n_timestep']} steps): "
                         "is this the config it was trained with?")


def build_public_network(settings: PublicSettings, device: str | torch.device = "meta") -> torch.nn.Module:
    """Our U-Net as their network (on the meta device by default: shapes without memory)."""
    from palette.unet import build_unet

    with torch.device(device):
        return build_unet("public", **settings.overrides)


def load_public_state_dict(path: str | Path) -> Mapping[str, Any]:
    """Read one of their .pth files (a plain state dict) without running code from it."""
    from palette.checkpoint import _torch_load_reason

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise ValueError(f"{path}: not a state dict torch.load can read safely ({_torch_load_reason(error)})") from None


# ----------------------------------------------------------------------------------------------
# Departures and their sampler


def public_sampler(settings: PublicSettings) -> dict:
    """Their sampler (Network.restoration / p_sample) as palette.diffusion.SamplerConfig settings:
    every step of the test schedule, the clipped posterior variance, x0 clamped to [-1, 1]."""
    from palette.diffusion import SamplerConfig

    test = settings.test_schedule
    return SamplerConfig(name="paper", steps=test["n_timestep"], variance="posterior", clip_x0=True,
                         beta_start=test["linear_start"], beta_end=test["linear_end"],
                         schedule_steps=test["n_timestep"]).to_dict()


def _describe_schedule(schedule: dict) -> str:
    return (f"{schedule['schedule']} {schedule['linear_start']:g}..{schedule['linear_end']:g} over "
            f"{schedule['n_timestep']} steps")


def import_departures(settings: PublicSettings) -> list[str]:
    """How the imported network and its training depart from the paper's method, in words
    (palette.departures' style; scale, such as its width, is not a departure). Its sampler's
    departures are palette.sampler_presets.sampler_departures(public_sampler(settings))."""
    from palette.diffusion import TRAINING_SCHEDULE

    changes = ["noise level embedded as raw gamma in [0, 1] with a sinusoid of maximum period 10000 "
               "(noise_embedding: raw_gamma), which barely separates nearby levels"]
    unet = settings.unet
    levels = len(unet["channel_mults"])
    found = set(settings.attention_resolutions)
    if found != {32, 16, 8}:
        middle = unet["image_size"] // 2 ** (levels - 1)
        where = (f"at {', '.join(f'{r}x{r}' for r in sorted(found, reverse=True))} and in the middle block"
                 if found else f"in the middle block only ({middle}x{middle})")
        change = f"self-attention {where} instead of at 32x32, 16x16 and 8x8"
        unmatched = [factor for factor in unet["attn_res"] if factor not in [2**level for level in range(levels)]]
        if unmatched:
            change += (f": its attn_res {unmatched} is compared with the down-sampling factor, and no level of its "
                       f"{levels}-level U-Net has that factor")
        changes.append(change)
    train, paper_train = settings.train_schedule, TRAINING_SCHEDULE
    paper_schedule = {"schedule": "linear", "n_timestep": paper_train.num_steps,
                      "linear_start": paper_train.beta_start, "linear_end": paper_train.beta_end}
    if train is not None and train != paper_schedule:
        changes.append(f"trained on the beta schedule {_describe_schedule(train)} instead of "
                       f"{_describe_schedule(paper_schedule)}")
    changes.append("training noise levels never between gamma_1 and 1 (its t is drawn from 1..T-1)")
    if settings.task in ("inpainting", "uncropping"):
        changes.append("masked loss averaged over all pixels, the known ones counting as zero error, so a small "
                       "hole weighs little")
    return changes


# ----------------------------------------------------------------------------------------------
# The import


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _epoch(path: Path) -> int | None:
    """Their files are named {epoch}_Network.pth / {epoch}_Network_ema.pth."""
    match = re.fullmatch(r"(\d+)_\w+?\.pth", path.name)
    return int(match[1]) if match else None


def import_checkpoint(config: str | Path, output: str | Path, network: str | Path | None = None,
                      ema: str | Path | None = None) -> dict:
    """Convert their `network` (`{epoch}_Network.pth`) and/or `ema` (`{epoch}_Network_ema.pth`)
    file with their JSON `config` into our checkpoint at `output`; returns the checkpoint's
    `imported` record. Sampling uses the EMA weights when `ema` is given (the checkpoint's `ema`
    entry), else the network's; `model` holds the network's when given. Every input is checked
    before anything is written, and written atomically (palette.checkpoint)."""
    from palette.checkpoint import FORMAT_VERSION, save_checkpoint
    from palette.config import load_config
    from palette.sampler_presets import sampler_departures

    if network is None and ema is None:
        raise ValueError("nothing to import: give their network file (--network N_Network.pth), their EMA file "
                         "(--ema N_Network_ema.pth) or both")
    config, output = Path(config), Path(output)
    inputs = {"network": Path(network) if network else None, "ema": Path(ema) if ema else None}
    given = {role: path for role, path in inputs.items() if path is not None}
    for path in [config, *given.values()]:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}")
        if output.exists() and output.samefile(path) or output.resolve() == path.resolve():
            raise ValueError(f"--output {output} is the input {path}: it would be overwritten; choose another name")
    settings = settings_from_config(read_public_config(config), f"config {config}")
    try:
        target = build_public_network(settings)
    except ValueError as error:  # e.g. widths GroupNorm's 32 groups or the attention heads do not divide
        raise ValueError(f"config {config}: key 'model.which_networks.0.args.unet' describes a network that cannot "
                         f"be built: {error}") from None
    weights = {role: convert_state_dict(load_public_state_dict(path), target, settings, str(path))
               for role, path in given.items()}
    sampled = "ema" if "ema" in weights else "network"

    train_values = {"name": settings.name, "task": settings.task, "preset": "public",
                    "model_overrides": settings.overrides, "image_size": settings.unet["image_size"],
                    "loss": "l2", "warmup_steps": 0}
    if settings.lr is not None:
        train_values["lr"] = settings.lr
    if settings.ema_decay is not None:
        train_values["ema_decay"] = settings.ema_decay
    train_config = load_config(train_values)
    sampler = public_sampler(settings)
    epochs = {_epoch(path) for path in given.values()} - {None}
    record = {
        "source": PUBLIC_REPOSITORY,
        "name": settings.name,
        "config": config.name,
        "weights": sampled,
        "files": {role: {"name": path.name, "sha256": _sha256(path)} for role, path in given.items()},
        "epoch": epochs.pop() if len(epochs) == 1 else None,
        "parameters": sum(parameter.numel() for parameter in target.parameters()),
        "unet": json.loads(json.dumps(settings.unet)),
        "attention_resolutions": list(settings.attention_resolutions),
        "beta_schedule": {"train": settings.train_schedule, "test": settings.test_schedule},
        "sampler": sampler,
        "departures": import_departures(settings),
        "sampler_departures": sampler_departures(sampler),
    }
    save_checkpoint({
        "format": FORMAT_VERSION, "kind": IMPORTED_KIND, "step": 0, "config": train_config.to_dict(),
        "objective": train_config.objective, "task": train_config.task,
        # one set of tensors when only one file is given: torch.save stores shared storage once
        "model": weights.get("network", weights[sampled]), "ema": weights[sampled],
        "imported": record,
    }, output)
    return record


def describe(record: dict) -> str:
    """A few lines for the terminal: what was imported and how it departs from the paper."""
    lines = [f"imported {record['name']} ({record['source']}): {record['weights']} weights, "
             f"{record['parameters'] / 1e6:.2f} M parameters"]
    lines += [f"  departs from the paper: {change}" for change in record["departures"]]
    lines += [f"  its sampler departs from the paper's: {change}" for change in record["sampler_departures"]]
    return "\n".join(lines)

