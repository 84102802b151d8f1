"""Benchmark: the cost of one FID claim of the report's "Does it reproduce?" section.

A paired FID bootstrap recomputes FID on every resample for both sides (palette.verdict.ResampledFid:
one eigendecomposition of the resample's Gram matrix per side). Prints, per evaluation-set size n,
the one-off set-up (reference sqrt, Gram matrices), seconds per resample and per claim at the
section's resample count, and the direct formula's seconds for one resample (np.cov + the 2048 x
2048 square root of palette.metrics.fid, which would replace each eigendecomposition without the
Gram form).

    python benchmarks/verdict_bootstrap.py               # n = 16, 100, 1000
    python benchmarks/verdict_bootstrap.py --sizes 16 5000 --direct
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from palette.verdict import FID_BOOTSTRAP_SAMPLES, ReferenceStatistics, ResampledFid, bootstrap_difference

DIM = 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 100, 1000])
    parser.add_argument("--samples", type=int, default=FID_BOOTSTRAP_SAMPLES)
    parser.add_argument("--direct", action="store_true", help="also time one resample with the direct 2048 x 2048 formula")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference_features = np.abs(rng.normal(size=(4096, DIM)))
    reference = ReferenceStatistics(reference_features.mean(0), np.cov(reference_features.T))
    start = time.perf_counter()
    reference.sqrt
    print(f"reference sqrt(Sigma) (once per reference file): {time.perf_counter() - start:.2f} s")
    print(f"{'n':>6} {'set-up s':>9} {'s/resample':>11} {'s/claim':>9} {'direct s/resample':>18}")
    for n in args.sizes:
        features = [np.abs(rng.normal(size=(n, DIM))).astype(np.float32) for _ in range(2)]
        start = time.perf_counter()
        side_a, side_b = ResampledFid(features[0], reference), ResampledFid(features[1], reference)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        bootstrap_difference(side_a, side_b, n, n, paired=True, samples=args.samples, seed=0)
        claim = time.perf_counter() - start
        direct = "-"
        if args.direct:
            from palette.metrics.fid import frechet_distance

            weights = np.bincount(rng.integers(0, n, n), minlength=n)
            start = time.perf_counter()
            x = features[0].astype(np.float64)
            frechet_distance(weights @ x / n, np.cov(x.T, fweights=weights), reference.mu, reference.sigma)
            direct = f"{time.perf_counter() - start:.2f}"
        print(f"{n:>6} {setup:>9.2f} {claim / args.samples / 2:>11.4f} {claim:>9.2f} {direct:>18}")


if __name__ == "__main__":
    main()
