"""Benchmark: our FID pipeline against clean-fid's own `compute_fid` on the same folders.

Both use the TF Inception 2015-12-05 weights (clean-fid through its TorchScript wrapper
`InceptionV3W`, fed the same TorchScript file since its download is unavailable offline; ours
through the eager conversion). Prints images/s of feature extraction, end-to-end seconds and both
FID values as a table.

    python benchmarks/metrics.py                      # two folders of real-photo crops
    python benchmarks/metrics.py --dirs A B --device cuda
    python benchmarks/metrics.py --whole-process --count 80   # `palette eval --metrics fid` vs compute_fid

--whole-process times each side as a fresh process, imports and weight loading included (what a
user waits for): `palette eval -s A -d B --metrics fid` against clean-fid's `compute_fid(A, B)`
on the same folders, and prints both FIDs and their relative difference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_photo_crops(folder: Path, names: list[str], count: int, seed: int) -> Path:
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = []
    for name in names:
        photos.append(load_sample_image(name) if name.endswith(".jpg") else getattr(skimage.data, name)())
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = photos[index % len(photos)]
        size = int(rng.integers(96, 256))
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        Image.fromarray(photo[top : top + size, left : left + size]).save(folder / f"{index:04d}.png")
    return folder


def clean_fid_extractor(device: torch.device):
    from cleanfid.inception_torchscript import InceptionV3W

    from palette.weights import resolve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.jit.load(str(resolve("inception_fid")), map_location=device).eval()
    wrapper = InceptionV3W.__new__(InceptionV3W)
    torch.nn.Module.__init__(wrapper)
    wrapper.base, wrapper.layers, wrapper.resize_inside = graph, graph.net.layers, False
    return wrapper


CLEAN_FID_PROCESS = """
import sys, time, warnings
import torch
from cleanfid import fid
sys.path.insert(0, {benchmarks!r})
from metrics import clean_fid_extractor
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    value = fid.compute_fid({first!r}, {second!r}, mode="clean", custom_feat_extractor=clean_fid_extractor(torch.device("cpu")),
                            num_workers=0, batch_size={batch_size}, device=torch.device("cpu"), verbose=False,
                            use_dataparallel=False)
print(float(value))
"""


def whole_process(first: Path, second: Path, batch_size: int, scratch: Path) -> None:
    """Time `palette eval --metrics fid` and clean-fid's compute_fid as fresh processes."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    json_path = scratch / "metrics.json"
    ours_command = [sys.executable, "-m", "palette.cli", "eval", "-s", str(first), "-d", str(second), "--metrics", "fid",
                    "--device", "cpu", "--batch-size", str(batch_size), "--no-progress", "--json", str(json_path)]
    theirs_code = CLEAN_FID_PROCESS.format(benchmarks=str(Path(__file__).resolve().parent), first=str(first),
                                           second=str(second), batch_size=batch_size)
    rows = []
    for name, command in (("palette eval --metrics fid", ours_command),
                          ("clean-fid compute_fid", [sys.executable, "-c", theirs_code])):
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
        value = json.loads(json_path.read_text())["fid"] if name.startswith("palette") else float(done.stdout.split()[-1])
        rows.append((name, seconds, value))
        print(f"{name}: {seconds:.1f} s, FID {value:.6f}", flush=True)
    (ours_name, ours_seconds, ours_fid), (theirs_name, theirs_seconds, theirs_fid) = rows
    count = len(list(first.iterdir())) + len(list(second.iterdir()))
    print(f"{count} images, whole process each, CPU, torch threads {torch.get_num_threads()}")
    print("| pipeline | seconds | FID |")
    print("|---|---|---|")
    for name, seconds, value in rows:
        print(f"| {name} | {seconds:.1f} | {value:.6f} |")
    print(f"speed-up {theirs_seconds / ours_seconds:.2f}x; relative FID difference "
          f"{abs(ours_fid - theirs_fid) / abs(theirs_fid):.2e}")


def compared_folders(args, scratch: Path) -> tuple[Path, Path]:
    """The two folders compared: --dirs, or crops of the installed photos written under `scratch`."""
    if args.dirs:
        return tuple(map(Path, args.dirs))
    first = write_photo_crops(scratch / "a", ["chelsea", "coffee", "astronaut", "rocket"], args.count, 1)
    second = write_photo_crops(scratch / "b", ["china.jpg", "flower.jpg", "coffee"], args.count, 2)
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirs", nargs=2, default=None, help="two image folders (default: photo crops)")
    parser.add_argument("--count", type=int, default=16, help="images per generated folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--whole-process", action="store_true",
                        help="time `palette eval --metrics fid` and compute_fid as whole processes (CPU)")
    args = parser.parse_args()
    if args.whole_process:
        with tempfile.TemporaryDirectory() as scratch:
            first, second = compared_folders(args, Path(scratch))
            whole_process(first, second, args.batch_size, Path(scratch))
        return
    device = torch.device(args.device)

    from cleanfid import fid as cleanfid_fid

    from palette.metrics.fid import FeatureStatistics, covariance_factor, frechet_distance, list_images
    from palette.metrics.inception import features_of_files, load_inception

    with tempfile.TemporaryDirectory() as scratch:
        first, second = compared_folders(args, Path(scratch))
        total = len(list_images(first)) + len(list_images(second))

        ours_model = load_inception(device)
        theirs_model = clean_fid_extractor(device)
        # warm-up (first-call allocation, TorchScript profiling)
        warm = list_images(first)[:2]
        features_of_files(ours_model, warm, progress=False)
        cleanfid_fid.get_files_features([str(p) for p in warm], theirs_model, num_workers=0, batch_size=2,
                                        device=device, mode="clean", verbose=False)

        start = time.perf_counter()
        ours_features = [features_of_files(ours_model, list_images(folder), args.batch_size, progress=False)
                         for folder in (first, second)]
        ours_seconds = time.perf_counter() - start
        start = time.perf_counter()
        theirs_features = [
            cleanfid_fid.get_folder_features(str(folder), theirs_model, num_workers=0, batch_size=args.batch_size,
                                             device=device, mode="clean", verbose=False)
            for folder in (first, second)
        ]
        theirs_seconds = time.perf_counter() - start

        start = time.perf_counter()
        stats = [FeatureStatistics.from_features(f) for f in ours_features]
        ours_fid = frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma,
                                    factor1=covariance_factor(ours_features[0]))  # as evaluate_folders
        ours_fid_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs_fid = cleanfid_fid.compute_fid(str(first), str(second), mode="clean", custom_feat_extractor=theirs_model,
                                                  num_workers=0, batch_size=args.batch_size, device=device,
                                                  verbose=False, use_dataparallel=False)
        theirs_total_seconds = time.perf_counter() - start
        max_feature_difference = max(float(np.abs(a - b).max()) for a, b in zip(ours_features, theirs_features))

    print(f"{total} images ({first} + {second}), device {device}, torch threads {torch.get_num_threads()}")
    print("| pipeline | feature extraction img/s | FID | seconds |")
    print("|---|---|---|---|")
    print(f"| palette (eager, clean resize, streamed float64) | {total / ours_seconds:.2f} | {ours_fid:.6f} | "
          f"{ours_seconds + ours_fid_seconds:.1f} (features {ours_seconds:.1f} + Frechet {ours_fid_seconds:.1f}) |")
    print(f"| clean-fid compute_fid (TorchScript) | {total / theirs_seconds:.2f} | {theirs_fid:.6f} | "
          f"{theirs_total_seconds:.1f} (compute_fid end to end) |")
    print(f"relative FID difference {abs(ours_fid - theirs_fid) / abs(theirs_fid):.2e}; "
          f"max feature difference {max_feature_difference:.2e}")


if __name__ == "__main__":
    main()
