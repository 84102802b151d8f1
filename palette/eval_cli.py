"""`palette eval -s GT_DIR -d SAMPLE_DIR`: the paper's metrics of a sample folder, as a table and JSON.

The flags follow the public reproduction (`-s` ground truth, `-d` samples). SAMPLE_DIR may hold the
images or `sample_K/` subfolders (diversity across samples). File names must correspond.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from palette.errors import positive_int
from palette.files import atomic_write


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--src", "--ground-truth", dest="gt_dir", required=True,
                        help="folder of ground-truth images")
    parser.add_argument("-d", "--dst", "--samples", dest="sample_dir", required=True,
                        help="folder of outputs, or of sample_K/ subfolders")
    parser.add_argument("--json", dest="json_path", default=None,
                        help="also write the results to this JSON file (default: the table only; never into "
                             "SAMPLE_DIR unasked); an existing file is refused unless --force")
    parser.add_argument("--force", action="store_true", help="let --json replace an existing file")
    parser.add_argument("--metrics", default="all",
                        help="comma-separated subset of fid,is,pd,ca,psnr,ssim,lpips,ms_ssim "
                             "(or 'diversity', 'all'; default all)")
    parser.add_argument("--reference", "--reference-stats", dest="reference_stats", default=None,
                        metavar="STATS.npz|FOLDER",
                        help="FID reference: statistics (.npz with mu/sigma, e.g. the workflow's "
                             "results/reference/NAME.npz) or a folder of reference images (statistics "
                             "computed once and cached). The paper's reference is the full validation set "
                             "(docs/paper.md); default: the ground-truth folder itself, named so in the output")
    parser.add_argument("--labels", default=None, help="CSV with name,label (ImageNet class index) for CA top-1")
    parser.add_argument("--classifier", default="auto", choices=["auto", "resnet50", "efficientnet_lite0"],
                        help="CA classifier (auto: ResNet-50 if its weights resolve, else EfficientNet-Lite0)")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available)")
    parser.add_argument("--weights-dir", default=None,
                        help="resources folder for weights (default: $PALETTE_WEIGHTS_DIR or resources/weights)")
    parser.add_argument("--weight", action="append", default=[], metavar="NAME=PATH",
                        help="explicit weight file, e.g. inception_full=/data/inception-2015-12-05.pt "
                             "(names: `palette weights list`); repeatable")
    parser.add_argument("--stats-cache-dir", default=None, help="where reference statistics are cached")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass of the metric networks")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def format_table(results: dict) -> str:
    rows = []
    for key, value in results.items():
        if isinstance(value, float):
            text = f"{value:.4f}" if math.isfinite(value) else str(value)
        elif isinstance(value, dict):  # fid_reference: what the FID was measured against
            text = f"{value.get('name')} ({value.get('count')} images, {value.get('path')})"
        elif isinstance(value, list):
            text = ", ".join(map(str, value))
        else:
            text = "n/a" if value is None else str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    """Bad input (mismatched names, missing weights, a bad --weight) raises ValueError / OSError,
    which palette.cli reports in one line with exit code 2."""
    from palette.metrics.evaluate import evaluate_folders

    json_path = Path(args.json_path) if args.json_path else None
    if json_path is not None:  # refused before any work: the evaluation can take hours
        if json_path.is_dir():
            raise IsADirectoryError(f"--json {json_path} is a folder; name a file")
        if json_path.exists() and not args.force:
            raise FileExistsError(f"--json {json_path} exists; add --force to replace it, or choose another name")
        folder = next(parent for parent in json_path.absolute().parents if parent.exists())
        if not folder.is_dir():
            raise NotADirectoryError(f"--json {json_path}: {folder} is a file, not a folder")
    weight_paths = {}
    for item in args.weight:
        name, separator, path = item.partition("=")
        if not separator:
            raise ValueError(f"--weight expects NAME=PATH, got {item!r}")
        weight_paths[name] = path
    results = evaluate_folders(
        args.gt_dir, args.sample_dir, metrics=args.metrics, device=args.device,
        reference_stats=args.reference_stats, labels=args.labels, classifier=args.classifier,
        weights_dir=args.weights_dir, weight_paths=weight_paths, stats_cache_dir=args.stats_cache_dir,
        batch_size=args.batch_size, progress=not args.no_progress,
    )
    print(format_table(results))
    if json_path is None:
        return 0
    # strict JSON has no Infinity/NaN (PSNR of identical images is inf): write them as strings
    safe = {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in results.items()}
    with atomic_write(json_path, "w") as handle:  # creates the parent folders
        handle.write(json.dumps(safe, indent=2, allow_nan=False) + "\n")
    print(f"wrote {json_path}")
    return 0
