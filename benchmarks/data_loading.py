"""Benchmark: training items per second from native-resolution photos (random crops at load time,
`dataset.preprocess: random_crop_native`) against the prepare stage's centre squares (the paper's
preprocessing, written once). Prints a table; the prepare stage's own one-time cost is a row too.

    python benchmarks/data_loading.py                    # the installed photos, 256 px
    python benchmarks/data_loading.py --size 64 --items 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from palette.data import PairedDataset, demo_photo_paths
from palette.prepare import prepare_split


def items_per_second(files, size: int, items: int) -> float:
    dataset = PairedDataset(files, "colorization", size, seed=0, train=True)  # the cheapest degradation
    started = time.perf_counter()
    for n in range(items):
        dataset.set_epoch(n // len(dataset))
        dataset[n % len(dataset)]
    return items / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    photos = demo_photo_paths()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        prepared = prepare_split(photos, Path(folder), args.size)
        prepare_seconds = time.perf_counter() - started
        native = items_per_second(photos, args.size, args.items)
        squares = items_per_second(prepared, args.size, args.items)
    print(f"{len(photos)} photos (native sizes up to {max(p.stat().st_size for p in photos) // 1024} KiB), "
          f"{args.items} training items at {args.size} px, one process")
    print(f"{'loader':<50}{'items/s':>10}")
    print(f"{'native photos, random crop (random_crop_native)':<50}{native:>10.1f}")
    print(f"{'prepared centre squares (center_square)':<50}{squares:>10.1f}")
    print(f"{'speed-up':<50}{squares / native:>9.2f}x")
    print(f"prepare stage, once: {prepare_seconds:.2f} s for {len(photos)} images")


if __name__ == "__main__":
    main()
