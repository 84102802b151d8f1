"""Restoring images with a trained model: evaluation sets (`palette sample`) and one image (`palette infer`).

Both go through `restore`, which runs the diffusion sampler (or the regression baseline's single
forward pass) on a batch of sources. Each output image gets its own random generator, seeded from
(seed, sample index, image name), so a sample does not depend on the batch it was drawn in, and an
interrupted run that skips finished files produces the same images as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from palette.data import load_evaluation_mask
from palette.diffusion import INFERENCE_SCHEDULE, SAMPLERS, SamplerConfig, impute, noise_prediction, sample
from palette.distributed import resolve_device
from palette.errors import positive_int
from palette.imageio import decode_problem, list_images, load_image, save_image, to_tensor
from palette.sampler_presets import RECORD_SUFFIX, SAMPLER_PRESETS, read_sampler_record, sampler_record_path



def image_generator(seed: int, sample_index: int, name: str) -> torch.Generator:
    """A CPU generator for one output image, independent of batch composition and order."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{sample_index}/{name}".encode()))


def _pad_multiple(model: torch.nn.Module) -> int:
    """The U-Net halves the size num_levels - 1 times, and local attention splits the deepest map
    in 2x2 blocks: sizes that are multiples of 2^num_levels suit every variant."""
    return 2 ** model.num_levels


@torch.no_grad()
def restore(
    model: torch.nn.Module,
    objective: str,
    source: torch.Tensor,
    mask: torch.Tensor | None,
    sampler: SamplerConfig,
    generators: list[torch.Generator],
    progress: bool = False,
    conditioning: str = "source",
) -> torch.Tensor:
    """Targets for a batch of sources [B, 3, H, W] in [-1, 1] (any H, W: reflect-padded for the U-Net).

    `conditioning` is the checkpoint's (TrainConfig.conditioning): "none" inpaints with the
    unconditional model by imputation (palette.diffusion.impute) instead of Palette's sampler.
    """
    height, width = source.shape[-2:]
    multiple = _pad_multiple(model)
    pad = (0, -width % multiple, 0, -height % multiple)
    if any(pad):
        source = F.pad(source, pad, mode="reflect")
        mask = None if mask is None else F.pad(mask, pad, value=0.0)
    if objective == "regression":
        from palette.models import regression_predict

        output = regression_predict(model, source, mask)
    else:
        # build_model records what the network predicts (eps or v) and whether it denoises the
        # residual target - source; the samplers want eps
        denoiser = noise_prediction(model, getattr(model, "prediction", "eps"))
        if conditioning == "none":
            output = impute(denoiser, source, mask, sampler, generators, progress=progress)
        else:
            output = sample(denoiser, source, mask, sampler, generators, progress=progress,
                            residual=getattr(model, "residual", False))
    return output[..., :height, :width].clamp(-1, 1)


class SamplingStopped(SystemExit):
    """A sampling run stopped between batches (time budget or a stop signal) with every finished
    image written; exits with palette.train.RESUME_EXIT_CODE (75) if not caught."""

    def __init__(self, reason: str, written: int, left: int):
        super().__init__(75)
        self.reason, self.written, self.left = reason, written, left

    def __str__(self) -> str:
        return f"sampling stopped ({self.reason}) after {self.written} images, {self.left} left; run again to resume"


def sample_evaluation_set(
    checkpoint: str | Path,
    set_dir: str | Path,
    out_dir: str | Path,
    sampler: dict | SamplerConfig,
    samples_per_input: int = 1,
    seed: int = 0,
    batch_size: int = 8,
    device: str = "auto",
    limit: int | None = None,
    names: list[str] | None = None,
    time_budget: float | None = None,
) -> Path:
    """Write `out_dir/sample_K/NAME.png` for every `set_dir/source/NAME.png` (architecture.md layout),
    or for the sources whose stems are in `names` (a shard, palette.shards).

    Files already written are kept and skipped, so a killed run resumes where it stopped (each
    file is written atomically: a kill never leaves half an image). With `time_budget` (seconds)
    or on a stop signal (palette.signals) it stops between two batches, always after at least
    one, and raises SamplingStopped.
    """
    import time

    from palette.checkpoint import load_model
    from palette.signals import StopSignals

    started = time.monotonic()
    sampler = sampler if isinstance(sampler, SamplerConfig) else SamplerConfig.from_dict(sampler)
    set_dir, out_dir = Path(set_dir), Path(out_dir)
    if samples_per_input < 1 or batch_size < 1:
        raise ValueError(f"samples per input ({samples_per_input}) and batch size ({batch_size}) must be positive")
    sources = list_images(set_dir / "source")
    if not sources:
        raise FileNotFoundError(f"no source images in {set_dir / 'source'}")
    sources = sources[:limit] if limit else sources
    if names is not None:
        chosen = set(names)
        sources = [path for path in sources if path.stem in chosen]
    torch_device = resolve_device(device)
    model, config = load_model(checkpoint, torch_device)
    from palette.degradations import MASKED_TASKS

    if config.task in MASKED_TASKS and not (set_dir / "mask").is_dir():
        raise FileNotFoundError(f"{set_dir} has no mask/ folder, but the model {checkpoint} fills masked pixels "
                                f"({config.task}): without masks it would regenerate whole images")
    jobs = [(k, path) for k in range(samples_per_input) for path in sources
            if not finished_output(out_dir / f"sample_{k}" / f"{path.stem}.png")]
    with tqdm(total=len(jobs), desc=f"sampling {set_dir.name}", unit="image") as bar, StopSignals() as signals:
        for start in range(0, len(jobs), batch_size):
            if start:  # at least one batch per run: every attempt makes progress
                elapsed = time.monotonic() - started  # the next batch is expected to take the mean so far
                reason = signals.received or (
                    "time budget" if time_budget is not None and elapsed * (1 + batch_size / start) > time_budget
                    else None)
                if reason:
                    raise SamplingStopped(reason, start, len(jobs) - start)
            batch = jobs[start:start + batch_size]
            source = torch.stack([to_tensor(load_image(path)) for _, path in batch]).to(torch_device)
            masks = [load_evaluation_mask(set_dir, path.stem) for _, path in batch]
            mask = None if masks[0] is None else torch.stack(masks).to(torch_device)
            generators = [image_generator(seed, k, path.stem) for k, path in batch]
            output = restore(model, config.objective, source, mask, sampler, generators, conditioning=config.conditioning)
            for (k, path), image in zip(batch, output):
                save_image(out_dir / f"sample_{k}" / f"{path.stem}.png", image.cpu())
            bar.update(len(batch))
    return out_dir


def finished_output(path: Path) -> bool:
    """Whether a rerun may keep an output an earlier run wrote: only a file that decodes
    completely (palette.imageio.decode_problem); a cut-off or damaged one is redone, and said so."""
    if not path.exists():
        return False
    problem = decode_problem(path)
    if problem:
        print(f"redoing a damaged output: {problem}")
    return problem is None


# ---------------------------------------------------------------------------------------------
# One image, no ground truth: the input is the degraded photo (and a mask for inpainting).

INPUT_TASKS = ("colorization", "inpainting", "uncropping", "jpeg", "super_resolution")


def prepare_source(image: torch.Tensor, task: str, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Turn a user's degraded photo [3, H, W] into the source the model was trained on."""
    from palette.degradations import SUPER_RESOLUTION_FACTOR, grayscale

    if task in ("inpainting", "uncropping"):
        if mask is None:
            raise ValueError(f"task {task!r} needs a mask (--mask FILE, white = pixels to fill)")
        return image * (1 - mask), mask.unsqueeze(0)
    if mask is not None:
        raise ValueError(f"task {task!r} takes no mask")
    if task == "colorization":
        return grayscale(image), None
    if task == "super_resolution":
        height, width = image.shape[-2:]
        size = (height * SUPER_RESOLUTION_FACTOR, width * SUPER_RESOLUTION_FACTOR)
        return F.interpolate(image[None], size=size, mode="bicubic", align_corners=False)[0].clamp(-1, 1), None
    if task == "jpeg":
        return image, None
    raise ValueError(f"unknown input task {task!r}; choose one of {', '.join(INPUT_TASKS)}")


def check_mask_has_holes(mask: torch.Tensor | None, described: str | None) -> None:
    """Refuse a mask that marks no pixel to fill: the output would be the input, silently."""
    if mask is not None and not bool(mask.any()):
        raise ValueError(f"mask {described} marks no pixel to fill (all black; white = fill): nothing to restore")


def resize_short_side(image: torch.Tensor, mask: torch.Tensor | None, size: int):
    """Resize so the short side is `size` (area filter down, bicubic up); masks stay binary."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    mode = dict(mode="area") if scale < 1 else dict(mode="bicubic", align_corners=False)
    image = F.interpolate(image[None], size=shape, **mode)[0].clamp(-1, 1)
    if mask is not None:
        mask = (F.interpolate(mask[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0] > 0.5).float()
    return image, mask


def tasks_of_model(model_task: str) -> tuple[str, ...]:
    """The input degradations a model was trained on (multitask: its three components)."""
    from palette.degradations import MULTITASK_COMPONENTS

    return MULTITASK_COMPONENTS if model_task == "multitask" else (model_task,)


def check_input_task(task: str, model_task: str, checkpoint) -> None:
    """Refuse a degradation `palette infer` cannot prepare, or one the model never saw."""
    if task not in INPUT_TASKS:
        raise ValueError(f"the model was trained on {model_task!r}: say which degradation the image has with --task")
    if task not in tasks_of_model(model_task):
        raise ValueError(f"--task {task}: the model {checkpoint} was trained on "
                         f"{', '.join(tasks_of_model(model_task))} only; it has never seen {task} inputs")


# The sampler options of `palette infer` / `sample`; naming none of them means "the sampler recorded
# beside the checkpoint" (palette.sampler_presets.read_sampler_record), else the fast preset.
SAMPLER_OPTIONS = ("sampler", "steps", "eta", "variance", "clip_x0", "noise_scale", "noise_range")


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    fast = SAMPLER_PRESETS["fast"]
    group = parser.add_argument_group(
        "sampler", "With none of these options, the sampler recorded beside the checkpoint "
                   f"(CHECKPOINT{RECORD_SUFFIX}: the one the workflow evaluated the model with, or the imported "
                   f"project's own) is used, else the fast preset ({fast['name']}, {fast['steps']} steps).")
    group.add_argument("--sampler", default=None, choices=SAMPLERS,
                       help=f"paper = Algorithm 2 with 1000 steps; the others are faster (default: the recorded "
                            f"sampler, else {fast['name']})")
    group.add_argument("--steps", type=positive_int, default=None,
                       help=f"steps of the fast samplers (default: {fast['steps']})")
    group.add_argument("--eta", type=float, default=None, help="DDIM stochasticity (default: 0)")
    group.add_argument("--variance", default=None, choices=("paper", "posterior"),
                       help="the ancestral samplers' noise: 1 - alpha_t as in Algorithm 2 (paper) or DDPM's smaller "
                            "posterior variance (default: paper for `paper`, posterior for `ancestral`)")
    group.add_argument("--clip-x0", action=argparse.BooleanOptionalAction, default=None,
                       help="clamp the predicted clean image to [-1, 1] at every step (default: on for the fast "
                            "samplers, which keeps models trained briefly stable; off for `paper`, as in Algorithm 2)")
    group.add_argument("--noise-scale", type=float, default=None,
                       help="multiply the fresh noise of every stochastic step (S_noise of Karras et al. 2022); "
                            "1 is the paper, below 1 gives cleaner samples from briefly trained models (default: 1)")
    group.add_argument("--noise-range", choices=("training", "inference"), default=None,
                       help="where the fast samplers take their noise levels: the training schedule's range "
                            "(gamma 4.4e-5..1, what the network has seen) or the paper's inference schedule's "
                            "(down to gamma 7e-21, which briefly trained models cannot denoise); `paper` always "
                            "uses the inference schedule (default: training)")
    group.add_argument("--seed", type=int, default=0, help="seeds every sample's noise (per image, batch-independent)")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: %(default)s)")


def sampler_from_arguments(args: argparse.Namespace, checkpoint: str | Path | None = None) -> SamplerConfig:
    """The sampler a command uses: the command line's when it names any sampler option (the `paper`
    preset, or the `fast` one with its overrides: palette.sampler_presets); otherwise the one recorded
    beside `checkpoint`; otherwise the fast preset. With a checkpoint, says which on stdout."""
    given = [name for name in SAMPLER_OPTIONS if getattr(args, name, None) is not None]
    record = read_sampler_record(checkpoint) if checkpoint is not None and not given else None
    if record is not None:
        name, settings = record
        sampler = SamplerConfig.from_dict(settings)
        print(f"sampler: {name} ({sampler.name}, {sampler.steps} steps, noise scale {sampler.noise_scale:g}), "
              f"recorded in {sampler_record_path(checkpoint)}; --sampler etc. choose another", flush=True)
        return sampler
    name = args.sampler or SAMPLER_PRESETS["fast"]["name"]
    if name == "paper":
        values = {"preset": "paper", "variance": args.variance or "paper", "clip_x0": bool(args.clip_x0)}
    else:
        values = {"preset": "fast", "name": name, "steps": args.steps or SAMPLER_PRESETS["fast"]["steps"],
                  "eta": args.eta or 0.0}
        if args.variance is not None:
            values["variance"] = args.variance
        if args.clip_x0 is not None:
            values["clip_x0"] = args.clip_x0
        if args.noise_range == "inference":
            values.update(beta_start=INFERENCE_SCHEDULE.beta_start, beta_end=INFERENCE_SCHEDULE.beta_end,
                          schedule_steps=INFERENCE_SCHEDULE.num_steps)
    if args.noise_scale is not None:
        values["noise_scale"] = args.noise_scale
    sampler = SamplerConfig.from_dict(values)
    if checkpoint is not None:
        origin = "the command line" if given else f"the default; no {sampler_record_path(checkpoint).name} beside the checkpoint"
        print(f"sampler: {sampler.name}, {sampler.steps} steps ({origin})", flush=True)
    return sampler
