"""Calibration of the verdicts' FID interval on synthetic features whose answer is known.

A verdict on "A has lower FID than B" reads a 95 % bootstrap interval of FID(A) - FID(B)
(palette.verdict). Whether that interval can be trusted is a question with a known answer on
Gaussian features: against a reference N(mu, Sigma) (Sigma with a decaying spectrum, like
Inception's), side A is N(mu + delta, Sigma), the right spread with a small mean shift, and side B
is N(mu, s^2 Sigma), too narrow. Their population FIDs have closed forms,
    FID(A) = |delta|^2,            FID(B) = (1 - s)^2 tr(Sigma),
set here to 1.50 and 4.04 at 64 dimensions (scaled with the dimension), so "A beats B" is true and
A - B = -2.54. Each trial draws n images per side, runs the verdict's own code (ResampledFid,
bootstrap_difference, decide, the too-few-images rule) and records whether the interval covers
the truth and what the verdict says. Over many trials:

- coverage: the share of intervals that contain the true A - B (95 % is the aim; 90 % the floor);
- contradicted: the share of trials calling the true claim contradicted (2.5 % at most);
- holds / inconclusive: the rest.

`python -m palette.calibration` prints the table that docs/verdicts.md quotes, for the basic
interval the verdicts use and for the percentile interval they used before.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from palette.verdict import (FID_BOOTSTRAP_SAMPLES, ReferenceStatistics, ResampledFid, bootstrap_difference, decide,
                             fid_too_few_images)

FID_A, FID_B = 1.50, 4.04  # at 64 dimensions; both scale with dimension / 64


@dataclass
class Case:
    """The synthetic reference and the two sides' distributions at one dimension."""

    dimension: int

    def __post_init__(self):
        d = self.dimension
        rng = np.random.default_rng(12345 + d)
        spectrum = 1.0 / np.arange(1, d + 1)
        spectrum *= d / spectrum.sum()  # tr(Sigma) = d, as for the identity
        basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
        self.mu = rng.normal(size=d)
        self.factor = basis * np.sqrt(spectrum)  # Sigma = factor @ factor.T
        self.reference = ReferenceStatistics(self.mu, self.factor @ self.factor.T, "synthetic")
        scale = d / 64
        direction = basis[:, 0]
        self.delta = direction * np.sqrt(FID_A * scale)
        self.narrow = 1.0 - np.sqrt(FID_B * scale / d)  # (1 - s)^2 tr(Sigma) = FID_B * scale
        self.truth = (FID_A - FID_B) * scale

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = self.mu + self.delta + rng.normal(size=(n, self.dimension)) @ self.factor.T
        b = self.mu + self.narrow * rng.normal(size=(n, self.dimension)) @ self.factor.T
        return a, b


def calibrate(dimension: int, n: int, trials: int, samples: int = FID_BOOTSTRAP_SAMPLES, interval: str = "basic",
              seed: int = 0) -> dict:
    """Coverage and verdict shares of `trials` paired trials of n images per side."""
    case = Case(dimension)
    rng = np.random.default_rng(seed)
    covered, verdicts, widths = 0, {"holds": 0, "contradicted": 0, "inconclusive": 0}, []
    for trial in range(trials):
        a, b = case.draw(rng, n)
        result = bootstrap_difference(ResampledFid(a, case.reference), ResampledFid(b, case.reference), n, n,
                                      paired=True, samples=samples, seed=seed * 100_003 + trial, interval=interval)
        lower, upper = result["lower"], result["upper"]
        covered += lower <= case.truth <= upper
        widths.append(upper - lower)
        verdict = "inconclusive" if fid_too_few_images(n, dimension) else decide("better", -1, lower, upper)[0]
        verdicts[verdict] += 1
    return {"dimension": dimension, "n": n, "interval": interval, "trials": trials, "samples": samples,
            "truth": case.truth, "coverage": covered / trials, "width": float(np.mean(widths)),
            **{verdict: count / trials for verdict, count in verdicts.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m palette.calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--samples", type=int, default=FID_BOOTSTRAP_SAMPLES)
    parser.add_argument("--dimensions", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--ratios", type=float, nargs="+", default=[1.5, 2.5, 5.0, 20.0],
                        help="images per feature dimension (the issue's 160, 320, 1280 at 64 dimensions: 2.5, 5, 20)")
    parser.add_argument("--intervals", nargs="+", default=["basic", "percentile"])
    args = parser.parse_args(argv)
    print(f"| dim | images | interval | trials | truth A-B | coverage | holds | contradicted | inconclusive | width | seconds |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dimension in args.dimensions:
        for ratio in args.ratios:
            n = int(round(ratio * dimension))
            trials = args.trials if dimension <= 64 else max(20, args.trials // 5)
            for interval in args.intervals:
                started = time.perf_counter()
                row = calibrate(dimension, n, trials, args.samples, interval)
                print(f"| {dimension} | {n} | {interval} | {trials} | {row['truth']:.2f} | {row['coverage']:.3f} | "
                      f"{row['holds']:.3f} | {row['contradicted']:.3f} | {row['inconclusive']:.3f} | {row['width']:.2f} | "
                      f"{time.perf_counter() - started:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
