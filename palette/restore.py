"""Restoring real photos with `palette infer`: folders, large images, panoramas.

A model is trained on `image_size` x `image_size` crops; a photo is usually larger. Three ways
to use it on such a photo, all at the photo's own resolution (`--full-resolution`, `--extend`):

- **Inpainting windows.** The holes of the mask (its connected components) each get a window of
  the model's size centred on them; holes whose windows overlap are merged into one region. A
  region larger than the window is covered by a grid of windows at half-window stride, filled
  in order, so each later window sees the pixels filled before it as known context (the model
  only ever sees windows of the size it was trained on). Windows that overlap no earlier
  unfilled window share a batch; the result is that of filling them one by one. Only masked
  pixels are pasted back, so every pixel outside the mask is bit-identical to the input.
- **Panoramas** (the paper's Figure 1 / uncropping figures): `--extend right --times N` repeats
  the uncropping step: the last half-window of the current image is the known half of a new
  window, the model generates the other half, which is appended. The image is first resized so
  its side across the extension equals the window; each step adds `window // 2` pixels.
- **Tiles** for colorization, JPEG restoration and 4x super-resolution: the degraded photo is
  cut in overlapping windows, each restored with its own generator seeded by its position, and
  blended with linear feathering weights across each overlap (weights sum to one everywhere, so
  a tile's content passes unchanged where tiles agree and seams fade linearly where they don't).

Every sampled crop gets its own generator from (seed, sample index, image name, crop position),
so a result does not depend on batching, and a folder run that skips finished files writes the
same images as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from palette.errors import positive_int
from palette.imageio import (IMAGE_EXTENSIONS, header_size, list_images, load_image, load_mask, output_format,
                             save_image_as, to_tensor, to_uint8)
from palette.inference import check_mask_has_holes, finished_output, image_generator, prepare_source

Restorer = Callable[[torch.Tensor, "torch.Tensor | None", Sequence[torch.Generator]], torch.Tensor]
"""A batch of sources [B, 3, h, w] in [-1, 1], masks [B, 1, h, w] (or None) and one generator per
sample -> outputs [B, 3, h, w] in [-1, 1]. `model_restorer` makes one from a checkpoint's model."""

DIRECTIONS = ("right", "left", "down", "up")
MASKED_INPUT_TASKS = ("inpainting", "uncropping")


def model_restorer(model: torch.nn.Module, objective: str, sampler, device: torch.device, batch_size: int,
                   conditioning: str = "source") -> Restorer:
    """Run palette.inference.restore in chunks of `batch_size` on `device`; outputs come back on the CPU."""
    from palette.inference import restore

    def run(source, mask, generators):
        outputs = []
        for start in range(0, source.shape[0], batch_size):
            end = start + batch_size
            chunk_mask = None if mask is None else mask[start:end].to(device)
            outputs.append(restore(model, objective, source[start:end].to(device), chunk_mask, sampler,
                                   list(generators[start:end]), conditioning=conditioning).cpu())
        return torch.cat(outputs)

    return run


# ---------------------------------------------------------------------------------------------
# Geometry.

@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def overlaps(self, other: "Box") -> bool:
        return (self.top < other.top + other.height and other.top < self.top + self.height
                and self.left < other.left + other.width and other.left < self.left + self.width)

    def union(self, other: "Box") -> "Box":
        top, left = min(self.top, other.top), min(self.left, other.left)
        bottom = max(self.top + self.height, other.top + other.height)
        right = max(self.left + self.width, other.left + other.width)
        return Box(top, left, bottom - top, right - left)


def _evenly_spaced_starts(first: int, last: int, count: int) -> list[int]:
    return sorted({int(round(first + (last - first) * i / max(count - 1, 1))) for i in range(count)})


def _cover_axis(low: int, high: int, total: int, window: int) -> list[int]:
    """Window starts along one axis covering the span [low, high) of an axis of `total` pixels.

    A span that fits gets one window centred on it (shifted to stay inside the image), so the
    hole is surrounded by as much known context as possible. A longer span is widened by a
    quarter window of context on both sides and covered at half-window stride.
    """
    length = min(window, total)
    if high - low <= length:
        return [min(max((low + high) // 2 - length // 2, 0), total - length)]
    low, high = max(low - window // 4, 0), min(high + window // 4, total)
    count = math.ceil((high - low - length) / max(length // 2, 1)) + 1
    return _evenly_spaced_starts(low, high - length, count)


def region_windows(region: Box, shape: tuple[int, int], window: int) -> list[Box]:
    """The windows that cover a hole region, in the order they are filled (row by row)."""
    height, width = min(window, shape[0]), min(window, shape[1])
    rows = _cover_axis(region.top, region.top + region.height, shape[0], window)
    columns = _cover_axis(region.left, region.left + region.width, shape[1], window)
    return [Box(top, left, height, width) for top in rows for left in columns]


def _hull(windows: list[Box]) -> Box:
    """The rectangle a region's windows cover (they tile it without gaps: stride <= half a window)."""
    hull = windows[0]
    for box in windows[1:]:
        hull = hull.union(box)
    return hull


def hole_regions(mask: np.ndarray, window: int) -> list[tuple[Box, list[Box]]]:
    """Group the holes of `mask` (bool [H, W], True = missing) into regions with their windows.

    Each connected component (8-connectivity) starts as its own region; regions whose windows
    overlap (or touch) are merged, their bounding boxes joined and their windows recomputed, until
    no windows of different regions overlap: the regions can then be filled independently, in one
    batch per round. Overlaps are found by painting the windows' rectangles and labelling them,
    linear in the pixel count however many specks a mask has.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    regions = [Box(int(stats[i, cv2.CC_STAT_TOP]), int(stats[i, cv2.CC_STAT_LEFT]),
                   int(stats[i, cv2.CC_STAT_HEIGHT]), int(stats[i, cv2.CC_STAT_WIDTH])) for i in range(1, count)]
    while regions:
        hulls = [_hull(region_windows(region, mask.shape, window)) for region in regions]
        canvas = np.zeros(mask.shape, np.uint8)
        for hull in hulls:
            canvas[hull.slices] = 1
        group_count, groups = cv2.connectedComponents(canvas, connectivity=4)
        if group_count - 1 == len(regions):
            break
        merged: dict[int, Box] = {}
        for region, hull in zip(regions, hulls):
            group = int(groups[hull.top, hull.left])
            merged[group] = merged[group].union(region) if group in merged else region
        regions = list(merged.values())
    return [(region, region_windows(region, mask.shape, window)) for region in regions]


def check_overlap(window: int, overlap: int) -> None:
    """Tiles overlap by 0 to window - 1 pixels (a tile overlapping itself entirely never advances)."""
    if not 0 <= overlap < window:
        raise ValueError(f"--overlap must be in 0..{window - 1} for a {window}-pixel window, got {overlap}")


def tile_boxes(shape: tuple[int, int], window: int, overlap: int) -> list[Box]:
    """Tiles of `window` x `window` covering an image, neighbours overlapping by at least `overlap`."""
    check_overlap(window, overlap)

    def starts(total: int) -> list[int]:
        if total <= window:
            return [0]
        return _evenly_spaced_starts(0, total - window, math.ceil((total - overlap) / (window - overlap)))

    height, width = min(window, shape[0]), min(window, shape[1])
    return [Box(top, left, height, width) for top in starts(shape[0]) for left in starts(shape[1])]


def feather_weights(box: Box, boxes: Sequence[Box]) -> np.ndarray:
    """[h, w] blending weights of one tile: 1 inside, a linear ramp over each overlap with a
    neighbour (rising from the tile's edge), never 0, so the normalised blend is defined everywhere."""

    def ramp(start: int, length: int, starts: list[int]) -> np.ndarray:
        weights = np.ones(length)
        before = [s + length for s in starts if s < start < s + length]
        after = [s for s in starts if start < s < start + length]
        if before:
            n = max(before) - start
            weights[:n] = np.minimum(weights[:n], (np.arange(n) + 0.5) / n)
        if after:
            n = start + length - min(after)
            weights[length - n:] = np.minimum(weights[length - n:], (np.arange(n)[::-1] + 0.5) / n)
        return weights

    rows = sorted({b.top for b in boxes})
    columns = sorted({b.left for b in boxes})
    return np.outer(ramp(box.top, box.height, rows), ramp(box.left, box.width, columns))


# ---------------------------------------------------------------------------------------------
# The three operations; each takes and returns uint8 [H, W, 3] so known pixels stay exact.

def _generator(seed: int, sample_index: int, name: str, where: str) -> torch.Generator:
    return image_generator(seed, sample_index, f"{name}@{where}")


def inpaint_windows(image: np.ndarray, mask: np.ndarray, restorer: Restorer, window: int, seed: int = 0,
                    sample_index: int = 0, name: str = "image", progress: bool = False) -> np.ndarray:
    """Fill the holes of a photo of any size with windows of the model's size (module docstring)."""
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask is {mask.shape} but the image is {image.shape[:2]}")
    canvas, remaining = image.copy(), mask.astype(bool).copy()
    pending = [box for _, windows in hole_regions(remaining, window) for box in windows]
    bar = tqdm(total=len(pending), desc="windows", disable=not progress, leave=False)
    while pending:
        # Fill windows in their order, batching every window that overlaps no earlier unfilled one:
        # the result is that of filling them one by one, however they are batched.
        boxes, waiting = [], []
        for box in pending:
            (waiting if any(box.overlaps(other) for other in boxes + waiting) else boxes).append(box)
        pending = waiting
        bar.update(len(boxes))
        boxes = [box for box in boxes if remaining[box.slices].any()]
        if not boxes:
            continue
        sources, masks = [], []
        for box in boxes:
            crop_mask = torch.from_numpy(remaining[box.slices]).float()
            source, crop_mask = prepare_source(to_tensor(canvas[box.slices]), "inpainting", crop_mask)
            sources.append(source)
            masks.append(crop_mask)
        generators = [_generator(seed, sample_index, name, f"{box.top},{box.left}") for box in boxes]
        outputs = restorer(torch.stack(sources), torch.stack(masks), generators)
        for box, output in zip(boxes, outputs):
            fill = remaining[box.slices]
            canvas[box.slices][fill] = to_uint8(output)[fill]
            remaining[box.slices] = False
    bar.close()
    return canvas


def _to_right(array: np.ndarray, direction: str) -> np.ndarray:
    """View an image so that extending it towards `direction` means extending it to the right."""
    if direction == "right":
        return array
    if direction == "left":
        return array[:, ::-1]
    if direction == "down":
        return array.swapaxes(0, 1)
    return array.swapaxes(0, 1)[:, ::-1]  # up


def _from_right(array: np.ndarray, direction: str) -> np.ndarray:
    if direction in ("right", "down"):
        return _to_right(array, direction)
    if direction == "left":
        return array[:, ::-1]
    return array[:, ::-1].swapaxes(0, 1)  # up


def fit_across(image: np.ndarray, direction: str, window: int) -> np.ndarray:
    """Resize so the side across the extension equals the window (aspect ratio kept)."""
    height, width = image.shape[:2]
    across = height if direction in ("left", "right") else width
    if across == window:
        return image
    scale = window / across
    if direction in ("left", "right"):
        size = (window, max(1, round(width * scale)))
    else:
        size = (max(1, round(height * scale)), window)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (size[1], size[0]), interpolation=interpolation)


def extend(image: np.ndarray, direction: str, times: int, restorer: Restorer, window: int, seed: int = 0,
           sample_index: int = 0, name: str = "image", progress: bool = False) -> np.ndarray:
    """Grow an image `times` times by the uncropping step (module docstring).

    The image's side across the extension must equal the window (see `fit_across`); the result is
    `times * (window // 2)` pixels longer along the extension, with the input unchanged in it.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown --extend direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    if times < 1:
        raise ValueError(f"--times must be at least 1, got {times}")
    canvas = np.ascontiguousarray(_to_right(image, direction))
    if canvas.shape[0] != window:
        raise ValueError(f"the image's side across the extension is {canvas.shape[0]} pixels; it must be the "
                         f"model's window ({window}): resize it with fit_across")
    step = window // 2
    for index in tqdm(range(times), desc=f"extending {direction}", disable=not progress, leave=False):
        known = canvas[:, -min(canvas.shape[1], window - step):]
        crop = np.concatenate([known, np.zeros((window, step, 3), np.uint8)], axis=1)
        crop_mask = np.zeros(crop.shape[:2], bool)
        crop_mask[:, known.shape[1]:] = True
        # The model sees the window in the photo's true orientation (it was trained on all four sides).
        real_crop, real_mask = _from_right(crop, direction), _from_right(crop_mask, direction)
        source, mask = prepare_source(to_tensor(np.ascontiguousarray(real_crop)), "uncropping",
                                      torch.from_numpy(np.ascontiguousarray(real_mask)).float())
        output = restorer(source[None], mask[None], [_generator(seed, sample_index, name, f"{direction}{index}")])
        generated = _to_right(to_uint8(output[0]), direction)[:, known.shape[1]:]
        canvas = np.concatenate([canvas, generated], axis=1)
    return np.ascontiguousarray(_from_right(canvas, direction))


def restore_tiles(source: torch.Tensor, restorer: Restorer, window: int, overlap: int, seed: int = 0,
                  sample_index: int = 0, name: str = "image", batch_size: int = 8,
                  progress: bool = False) -> torch.Tensor:
    """Restore a prepared source [3, H, W] (any size) tile by tile and blend the tiles (module docstring)."""
    shape = tuple(source.shape[-2:])
    boxes = tile_boxes(shape, window, overlap)
    total = torch.zeros(source.shape, dtype=torch.float64)
    weight_sum = torch.zeros(shape, dtype=torch.float64)
    starts = range(0, len(boxes), batch_size)
    for start in tqdm(starts, desc="tiles", disable=not progress or len(starts) < 2, leave=False):
        batch = boxes[start:start + batch_size]
        crops = torch.stack([source[(slice(None), *box.slices)] for box in batch])
        generators = [_generator(seed, sample_index, name, f"{box.top},{box.left}") for box in batch]
        outputs = restorer(crops, None, generators)
        for box, output in zip(batch, outputs):
            weights = torch.from_numpy(feather_weights(box, boxes))
            total[(slice(None), *box.slices)] += output.double() * weights
            weight_sum[box.slices] += weights
    return (total / weight_sum).float()


# ---------------------------------------------------------------------------------------------
# `palette infer` over files and folders.

def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("photos larger than the model, folders, panoramas (palette.restore)")
    group.add_argument("--full-resolution", action="store_true",
                       help="keep the photo's size: inpainting fills a window of the model's size around each "
                            "hole and pastes it back (pixels outside the mask stay bit-identical); colorization, "
                            "JPEG and super-resolution run on overlapping tiles blended at the seams")
    group.add_argument("--window", type=positive_int, default=None,
                       help="window/tile size, a multiple of the U-Net's size unit (default: the size the model "
                            "was trained at)")
    group.add_argument("--overlap", type=int, default=None,
                       help="minimum overlap of neighbouring tiles, 0 to window - 1 (default: a quarter of the window)")
    group.add_argument("--extend", choices=DIRECTIONS,
                       help="panorama: grow the image towards this side by repeated uncropping (an uncropping model)")
    group.add_argument("--times", type=positive_int, default=1,
                       help="with --extend: how many uncropping steps of half a window each (default: %(default)s)")
    group.add_argument("--batch-size", type=positive_int, default=8,
                       help="crops or images per forward pass (default: %(default)s)")


def wanted(args: argparse.Namespace) -> bool:
    """Whether `palette infer` should go through this module (folders, full resolution, panoramas)."""
    return bool(args.full_resolution or args.extend or Path(args.image).is_dir())


@dataclass(frozen=True)
class Job:
    image: Path
    mask: Path | None
    outputs: tuple[Path, ...]  # one per sample
    name: str


def _find_mask(mask_dir: Path, relative: Path) -> Path:
    for suffix in (relative.suffix, *IMAGE_EXTENSIONS, *(e.upper() for e in IMAGE_EXTENSIONS)):
        candidate = mask_dir / relative.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    expected = mask_dir / relative.with_suffix(".png")
    raise FileNotFoundError(f"no mask for {relative} in {mask_dir} (expected {expected})")


def sample_paths(output: Path, samples: int) -> tuple[Path, ...]:
    """OUTPUT for one sample, OUTPUT_0 ... OUTPUT_{N-1} otherwise (as for one image)."""
    if samples == 1:
        return (output,)
    return tuple(output.with_name(f"{output.stem}_{k}{output.suffix}") for k in range(samples))


def plan_jobs(image: str | Path, output: str | Path, mask: str | Path | None, samples: int, masked: bool) -> list[Job]:
    """The images to restore and where each goes. A folder's images (any depth) go to the output
    folder under their relative path with a .png suffix (one image's output: the format its suffix
    names, palette.imageio.output_format); masks come from a mask folder with the same relative
    names (any image suffix). Everything is checked before any work starts."""
    image, output = Path(image), Path(output)
    if not image.is_dir():
        output_format(output)
        if output.resolve() == image.resolve():
            raise ValueError(f"--output {output} is the input image: choose another name")
        return [Job(image, Path(mask) if mask else None, sample_paths(output, samples), image.stem)]
    if output.resolve() == image.resolve() or image.resolve() in output.resolve().parents:
        raise ValueError(f"--output {output} is inside the input folder {image}: outputs would be read as inputs")
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} must be a folder when --image is a folder")
    if masked and not mask:
        raise ValueError("a folder of images for a masked task needs --mask FOLDER with masks of the same names")
    if mask and not Path(mask).is_dir():
        raise ValueError(f"--mask {mask} must be a folder when --image is a folder")
    images = list_images(image, recursive=True)
    if not images:
        raise FileNotFoundError(f"no images in {image}")
    jobs, seen = [], {}
    for path in images:
        relative = path.relative_to(image)
        target = output / relative.with_suffix(".png")
        if target in seen:
            raise ValueError(f"{path} and {seen[target]} would both be written to {target}")
        seen[target] = path
        mask_path = _find_mask(Path(mask), relative) if mask else None
        jobs.append(Job(path, mask_path, sample_paths(target, samples), relative.with_suffix("").as_posix()))
    return jobs


def run(args: argparse.Namespace) -> int:
    """`palette infer` for folders, --full-resolution and --extend (palette.infer_cli dispatches here)."""
    from palette.checkpoint import load_model
    from palette.inference import check_input_task, resize_short_side, resolve_device, sampler_from_arguments

    device = resolve_device(args.device)
    model, config = load_model(args.checkpoint, device)
    task = args.task or config.task
    if not args.extend:  # a panorama may force --task uncropping on another model
        check_input_task(task, config.task, args.checkpoint)
    if args.extend and task != "uncropping":
        raise ValueError(f"--extend needs an uncropping model (this one was trained on {config.task!r}; "
                         f"--task uncropping to force it)")
    if args.extend and args.mask:
        raise ValueError("--extend makes its own masks; drop --mask")
    if args.window is not None:
        check_window(args.window, model)
    window = args.window or config.image_size  # the size the model was trained at (not its preset's)
    overlap = window // 4 if args.overlap is None else args.overlap
    check_overlap(window, overlap)
    restorer = model_restorer(model, config.objective, sampler_from_arguments(args, args.checkpoint), device, args.batch_size,
                              conditioning=config.conditioning)
    masked = task in MASKED_INPUT_TASKS and not args.extend
    jobs = plan_jobs(args.image, args.output, args.mask, args.num_samples, masked)
    folder = Path(args.image).is_dir()
    size = args.size or (config.image_size if not (args.full_resolution or args.extend)
                         and model.attention_type in ("global", "local") else None)
    check_sizes(jobs, task, window, size, full_resolution=bool(args.full_resolution and not args.extend))
    # A folder run resumes: outputs already written are kept if they decode (a cut-off one is redone).
    pending = [(job, k) for job in jobs for k, path in enumerate(job.outputs) if not (folder and finished_output(path))]
    if folder and len(pending) < len(jobs) * args.num_samples:
        print(f"skipping {len(jobs) * args.num_samples - len(pending)} finished outputs in {args.output}")
    whole_images = not (args.full_resolution or args.extend)
    with tqdm(total=len(pending), desc="restoring", unit="image", disable=len(pending) < 2) as bar:
        index = 0
        while index < len(pending):
            # Whole images (resized to the model's size) are batched across images of one shape;
            # windows, tiles and panorama steps are batched within an image.
            batch = pending[index:index + (args.batch_size if whole_images else 1)]
            index += len(batch)
            prepared = {}
            for job, _ in batch:
                if job not in prepared:
                    prepared[job] = _load(job, size, resize_short_side)
            if whole_images:
                _restore_whole(batch, prepared, task, restorer, args.seed)
            else:
                job, k = batch[0]
                image, mask = prepared[job]
                _restore_large(job, k, image, mask, task, restorer, window, overlap, args)
            bar.update(len(batch))
    if not folder:
        print("wrote " + ", ".join(str(path) for path in jobs[0].outputs))
    return 0


def check_window(window: int, model: torch.nn.Module) -> None:
    """A --window the U-Net can take as it is: a multiple of its size unit (palette.inference
    pads anything else by reflection, which fails outright when the pad exceeds the window)."""
    from palette.inference import _pad_multiple

    unit = _pad_multiple(model)
    if window % unit:
        nearest = max(unit, round(window / unit) * unit)
        raise ValueError(f"--window {window} is not a multiple of {unit}, the size unit of this model's U-Net; "
                         f"try --window {nearest}")


def check_sizes(jobs: list[Job], task: str, window: int, size: int | None, full_resolution: bool) -> None:
    """Before any work, from the files' headers (nothing decoded): every image and mask is within
    the pixel limit (palette.imageio.header_size), and at full resolution every image is at least
    one window on each side (a thinner one would be a window of padding, or fail to pad)."""
    from palette.degradations import SUPER_RESOLUTION_FACTOR

    for job in jobs:
        width, height = header_size(job.image)
        if job.mask:
            header_size(job.mask)
        if not full_resolution:
            continue
        short = size or min(width, height)  # --size resizes the short side first
        factor = SUPER_RESOLUTION_FACTOR if task == "super_resolution" else 1
        if short * factor < window:
            scaled = f" ({factor}x for super-resolution: {short * factor})" if factor > 1 else ""
            raise ValueError(f"{job.image} is {width}x{height} pixels: its short side{scaled} is smaller than one "
                             f"{window}-pixel window of --full-resolution; without it the image is resized to "
                             f"the model's size")


def _load(job: Job, size: int | None, resize_short_side) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The image [3, H, W] in [-1, 1] and its mask [H, W] (1 = missing), resized as `palette infer`
    resizes one image, so a folder's outputs equal those of one-image runs; a mask with nothing
    to fill is refused as there."""
    image = to_tensor(load_image(job.image))
    mask = torch.from_numpy(load_mask(job.mask)).float() if job.mask else None
    if mask is not None and mask.shape != image.shape[-2:]:
        raise ValueError(f"mask {job.mask} is {tuple(mask.shape)} but image {job.image} is {tuple(image.shape[-2:])}")
    check_mask_has_holes(mask, job.mask)
    if size and min(image.shape[-2:]) != size:
        image, mask = resize_short_side(image, mask, size)
        check_mask_has_holes(mask, f"{job.mask} resized to {tuple(image.shape[-2:])}")
    return image, mask


def _restore_whole(batch, prepared, task: str, restorer: Restorer, seed: int) -> None:
    groups: dict[tuple, list] = {}
    for job, k in batch:
        groups.setdefault(tuple(prepared[job][0].shape), []).append((job, k))
    for members in groups.values():
        sources, masks = [], []
        for job, _ in members:
            image, mask = prepared[job]
            source, mask = prepare_source(image, task, mask)
            sources.append(source)
            masks.append(mask)
        mask = None if masks[0] is None else torch.stack(masks)
        outputs = restorer(torch.stack(sources), mask, [image_generator(seed, k, job.name) for job, k in members])
        for (job, k), output in zip(members, outputs):
            save_image_as(job.outputs[k], output)


def _restore_large(job: Job, k: int, image, mask, task: str, restorer: Restorer, window: int, overlap: int,
                   args: argparse.Namespace) -> None:
    common = dict(seed=args.seed, sample_index=k, name=job.name, progress=True)
    image, mask = to_uint8(image), None if mask is None else mask.numpy() > 0.5  # exact for 8-bit inputs
    if args.extend:
        fitted = fit_across(image, args.extend, window)
        along = fitted.shape[1] if args.extend in ("left", "right") else fitted.shape[0]
        if along < window - window // 2:  # each step keeps the last half window as the known context
            raise ValueError(f"{job.image} is {image.shape[1]}x{image.shape[0]} pixels: resized to the {window}-pixel "
                             f"window across, it is {along} pixels along the extension, less than the half window "
                             f"({window - window // 2}) each step keeps as context")
        result = extend(fitted, args.extend, args.times, restorer, window, **common)
    elif task in MASKED_INPUT_TASKS:
        if mask is None:
            raise ValueError(f"task {task!r} needs a mask (--mask FILE, white = pixels to fill)")
        result = inpaint_windows(image, mask, restorer, window, **common)
    else:
        source, _ = prepare_source(to_tensor(image), task, None if mask is None else torch.from_numpy(mask).float())
        result = restore_tiles(source, restorer, window, overlap, batch_size=args.batch_size, **common)
    save_image_as(job.outputs[k], result)
