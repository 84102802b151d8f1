"""`palette import`: convert a checkpoint of the public reproduction (its network file and its
JSON config) into this project's checkpoint format (palette.import_public, docs/import.md)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="its JSON config (e.g. config/inpainting_places2.json; // comments are fine)")
    parser.add_argument("--network", default=None, help="its network file, N_Network.pth")
    parser.add_argument("--ema", default=None,
                        help="its EMA file, N_Network_ema.pth: sampling then uses the EMA weights")
    parser.add_argument("--output", required=True, help="where to write the converted checkpoint (.pt)")


def run(args: argparse.Namespace) -> int:
    from palette.import_public import describe, import_checkpoint

    from palette.sampler_presets import sampler_record_path, write_sampler_record

    record = import_checkpoint(args.config, args.output, network=args.network, ema=args.ema)
    print(describe(record))
    # their own sampler travels with the model: palette infer / sample use it by default
    write_sampler_record(sampler_record_path(args.output), "public_reproduction", record["sampler"])
    print(f"wrote {args.output} and {sampler_record_path(args.output)} (their sampler, palette infer's default)")
    return 0
