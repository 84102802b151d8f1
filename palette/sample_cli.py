"""`palette sample`: restore every image of an evaluation set with a trained model."""

from __future__ import annotations

import argparse

from palette.errors import add_renamed_option, positive_int
from palette.inference import add_sampler_arguments, sample_evaluation_set, sampler_from_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by `palette train`")
    parser.add_argument("--input", required=True, help="an evaluation set: INPUT/source/*.png (+ INPUT/mask/*.png)")
    parser.add_argument("--output", required=True, help="writes OUTPUT/sample_K/NAME.png")
    add_renamed_option(parser, "--num-samples", "--samples", type=positive_int, default=1,
                       help="samples per input, for diversity (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="inputs sampled at once")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    add_sampler_arguments(parser)


def run(args: argparse.Namespace) -> int:
    out = sample_evaluation_set(
        args.checkpoint, args.input, args.output, sampler_from_arguments(args, args.checkpoint), samples_per_input=args.num_samples,
        seed=args.seed, batch_size=args.batch_size, device=args.device, limit=args.limit,
    )
    print(f"samples written to {out}")
    return 0
