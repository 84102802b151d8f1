"""`palette infer`: restore one image of your own (no ground truth needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from palette import restore as restore_photos
from palette.errors import add_renamed_option, positive_int
from palette.inference import (INPUT_TASKS, add_sampler_arguments, check_input_task, check_mask_has_holes,
                               image_generator, prepare_source, resize_short_side, resolve_device, restore,
                               sampler_from_arguments)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by `palette train`")
    parser.add_argument("--image", required=True, help="the degraded photo (grayscale, holed, JPEG, low-resolution)")
    parser.add_argument("--mask", help="inpainting/uncropping: a PNG the size of the image, white = pixels to fill")
    parser.add_argument("--task", choices=INPUT_TASKS,
                        help="what the image suffers from; defaults to the model's task (required for multi-task models)")
    parser.add_argument("--output", required=True,
                        help="where to write the restored image; its suffix picks the format (.png, .jpg, .webp, ...)")
    parser.add_argument("--size", type=positive_int, default=None,
                        help="resize the image so its short side is SIZE first (default: the model's training size for "
                             "models with attention, whose cost grows with the square of the pixel count; native size "
                             "for the attention-free variants)")
    add_renamed_option(parser, "--num-samples", "--samples", type=positive_int, default=1,
                       help="write N samples: OUTPUT_0.png ... (default: one, OUTPUT)")
    add_sampler_arguments(parser)
    restore_photos.add_arguments(parser)


def check_outputs(args: argparse.Namespace) -> list[Path]:
    """The output paths; refused when one would overwrite an input or has no image format."""
    from palette.imageio import output_format

    output = Path(args.output)
    paths = [output] if args.num_samples == 1 else [output.with_name(f"{output.stem}_{k}{output.suffix}")
                                                for k in range(args.num_samples)]
    inputs = [Path(p) for p in (args.image, args.mask, args.checkpoint) if p]
    for path in paths:
        output_format(path)
        for given in inputs:
            if path.resolve() == given.resolve() or (path.exists() and given.exists() and path.samefile(given)):
                raise ValueError(f"--output {path} is the input {given}: it would be overwritten; choose another name")
    return paths


def run(args: argparse.Namespace) -> int:
    from palette.checkpoint import load_model
    from palette.imageio import load_image, load_mask, save_image_as, to_tensor

    if restore_photos.wanted(args):  # folders, --full-resolution, --extend
        return restore_photos.run(args)
    outputs = check_outputs(args)  # before any work: a refused output name costs nothing
    device = resolve_device(args.device)
    model, config = load_model(args.checkpoint, device)
    task = args.task or config.task
    check_input_task(task, config.task, args.checkpoint)
    image = to_tensor(load_image(args.image))
    mask = None
    if args.mask:
        mask = torch.from_numpy(load_mask(args.mask)).float()
        if mask.shape != image.shape[-2:]:
            raise ValueError(f"mask {args.mask} is {tuple(mask.shape)} but image {args.image} is {tuple(image.shape[-2:])}")
    check_mask_has_holes(mask, args.mask)
    # the size the model was trained at (its config's image_size; the preset's own may differ)
    size = args.size or (config.image_size if model.attention_type in ("global", "local") else None)
    if size and min(image.shape[-2:]) != size:
        image, mask = resize_short_side(image, mask, size)
        print(f"resized {args.image} to {tuple(image.shape[-2:])} "
              f"({'--size' if args.size else 'the size the model was trained at; --size to choose another'})")
        check_mask_has_holes(mask, f"{args.mask} resized to {tuple(image.shape[-2:])}")
    source, mask = prepare_source(image, task, mask)
    sampler = sampler_from_arguments(args, args.checkpoint)
    name = Path(args.image).stem
    source = source[None].to(device)
    batch_mask = None if mask is None else mask[None].to(device)
    for k in range(args.num_samples):
        generators = [image_generator(args.seed, k, name)]
        result = restore(model, config.objective, source, batch_mask, sampler, generators, progress=True,
                         conditioning=config.conditioning)
        path = outputs[k]
        save_image_as(path, result[0].cpu())
        print(f"wrote {path}")
    return 0
