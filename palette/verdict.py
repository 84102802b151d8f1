"""Does it reproduce? The paper's findings as comparisons, each with a bootstrap interval and a verdict.

Every finding of the paper's text (docs/paper.md, "Target numbers" and the ablations) is written
as a comparison of two runs of this workflow evaluated on the same task variant: "Palette beats
the regression baseline on FID", "L2 gives more diverse samples than L1", "the multi-task model is
close to the specialist". For each we compute our difference A - B and a 95 % percentile bootstrap
interval over the evaluation images, from the per-image file the evaluate rule writes beside each
metrics JSON (`results/metrics/{experiment}/{task}/{sampler}.npz`: one row per image, same order
as its `names`). Both sides are evaluated on the same images, so resampling is paired: one draw of
image indices serves both sides, and differences of images between the sides cancel.

A verdict reads the interval against the claim:
- a direction ("A beats B"): *holds* when the whole interval lies on the claimed side of zero,
  *contradicted* when it lies wholly on the other side, *inconclusive* when it contains zero;
- closeness ("A is close to B"): a margin `CLOSE_MARGIN` times B's value (10 %) stated in the
  claim; *holds* when the whole interval lies within it, *contradicted* when wholly outside,
  *inconclusive* when it straddles the margin's edge, or when an FID side is below the paper's
  image count (`fid_comparable` false): such an FID is mostly small-sample bias, and 10 % of it
  would call anything close;
- *inconclusive* as well with fewer than `MIN_IMAGES` images, or when a side was not measured
  (its run is not in the configuration, or its file or key is missing), with the reason.

FID is a statistic of the whole set, so its bootstrap recomputes FID on every resample of the
`pool3` rows against the fixed reference statistics (`results/reference/{name}.npz`, named in the
metrics JSON's `fid_reference.path`). That is fast and exact (`ResampledFid`): with R the
reference's sqrt(Sigma_ref) computed once and Y = X R, the trace term tr sqrt(Sigma Sigma_ref) of a
resample is the sum of square roots of the eigenvalues of its centred, weighted n x n Gram matrix of
Y, the same nonzero spectrum as the 2048 x 2048 matrix R Sigma R. IS likewise is recomputed from
the per-image class probabilities (one split over the whole set); per-image metrics (PSNR, SSIM,
PD, LPIPS diversity) are means.

Seeded and deterministic: each claim draws its resamples from `numpy.random.default_rng` seeded by
`SEED` and the claim's id, so a claim's interval does not depend on which other claims ran.
Torch-free (numpy only), like the rest of the report.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from palette.departures import run_departures
from palette.external import EXTERNAL_ROLE, external_label, reported_text
from palette.frechet import load_statistics, read_npz, symmetric_sqrt
from palette.paper_numbers import paper_cell, palette_rows, table_protocol
from palette.reference_sets import FID5K_REFERENCE_NAME
from palette.sampler_presets import PAPER_SAMPLER, resolve_sampler
from palette.tasks import COLORIZATION_CTEST10K, colorization_on_test_list

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000  # resamples for means and IS (microseconds each)
FID_BOOTSTRAP_SAMPLES = 200  # resamples for FID: one eigendecomposition per side each (docs/verdicts.md, "Cost")
MIN_IMAGES = 10  # below this a bootstrap interval says little: the verdict is "inconclusive"
# FID verdicts need at least this many images per feature dimension: below it the interval is not
# calibrated (docs/verdicts.md: at 40 images in 64 dimensions it missed the truth in 95 % of trials).
FID_IMAGES_PER_DIMENSION = 2
CLOSE_MARGIN = 0.10  # "close" means within 10 % of the reference side's value
SEED = 0

IS_SPLITS = 10  # the Inception Score averages 10 splits, as the paper's tables and palette.metrics do
NUMBER_TOLERANCE = 0.10  # "number reproduced": the paper's value within our interval widened by 10 % of it
LOWER_IS_BETTER = {"fid", "pd"}
METRIC_LABELS = {"fid": "FID", "is": "IS", "ca": "CA", "psnr": "PSNR", "ssim": "SSIM", "pd": "PD", "lpips_diversity": "LPIPS diversity"}
# The per-image key each metric is computed from (palette's per-image file, see the module doc).
PER_IMAGE_KEYS = {"fid": "pool3", "is": "inception_probabilities", "ca": "ca_correct", "psnr": "psnr", "ssim": "ssim", "pd": "perceptual_distance",
                  "lpips_diversity": "lpips_diversity"}
# CA by another classifier than the paper's ResNet-50 (no weights, or no labels): still a direction
CA_FALLBACK_KEY = "classifier_correct"


# ---------------------------------------------------------------------------------------------
# Statistics of a weighted resample: weights are how often each row was drawn (sum = n)
# ---------------------------------------------------------------------------------------------


class ReferenceStatistics:
    """FID reference statistics (mu, Sigma) and sqrt(Sigma), computed once per reference file."""

    def __init__(self, mu, sigma, name: str = "", path: str = ""):
        self.mu = np.asarray(mu, np.float64)
        self.sigma = np.asarray(sigma, np.float64)
        self.name, self.path = name, path
        self.trace = float(np.trace(self.sigma))
        self._sqrt = None

    @property
    def sqrt(self) -> np.ndarray:
        if self._sqrt is None:
            self._sqrt = symmetric_sqrt(self.sigma)
        return self._sqrt

    @classmethod
    def load(cls, path) -> "ReferenceStatistics":
        """Checked (palette.frechet.load_statistics): ValueError naming a damaged or non-finite file."""
        statistics = load_statistics(path)
        return cls(statistics["mu"], statistics["sigma"], statistics["name"] or Path(path).stem, str(path))


class ResampledFid:
    """FID of any weighted resample of feature rows against fixed reference statistics, exactly.

    FID = |m - mu_r|^2 + tr(Sigma) + tr(Sigma_r) - 2 tr sqrt(R Sigma R), R = sqrt(Sigma_r).
    With Y = X R and C the resample's centred rows of Y weighted by sqrt(w) / sqrt(n - 1),
    R Sigma R = C^T C, whose nonzero eigenvalues are those of the Gram matrix C C^T: an
    (unique rows) x (unique rows) eigenproblem instead of 2048 x 2048 while n <= 2048. The Gram
    matrix of Y is computed once, so a resample costs one small eigendecomposition.
    """

    def __init__(self, features, reference: ReferenceStatistics):
        self.x = np.asarray(features, np.float64)
        self.n, self.dim = self.x.shape
        if self.dim != reference.mu.shape[0]:
            raise ValueError(f"features have {self.dim} columns, the reference statistics {reference.mu.shape[0]}")
        self.reference = reference
        self.y = self.x @ reference.sqrt
        self.squared_norms = np.einsum("ij,ij->i", self.x, self.x)
        self.gram = self.y @ self.y.T if self.n <= self.dim else None

    def __call__(self, weights=None) -> float:
        n = self.n
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        rows = np.flatnonzero(w)
        w_rows = w[rows]
        mean = w_rows @ self.x[rows] / n
        mean_y = w_rows @ self.y[rows] / n
        trace = (w_rows @ self.squared_norms[rows] - n * mean @ mean) / (n - 1)
        if self.gram is not None:
            projections = self.y[rows] @ mean_y
            centred = self.gram[np.ix_(rows, rows)] - projections[:, None] - projections[None, :] + mean_y @ mean_y
            root = np.sqrt(w_rows)
            eigenvalues = np.linalg.eigvalsh(root[:, None] * centred * root[None, :] / (n - 1))
        else:
            centred = self.y[rows] - mean_y
            eigenvalues = np.linalg.eigvalsh((centred * w_rows[:, None]).T @ centred / (n - 1))
        trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
        difference = mean - self.reference.mu
        return float(difference @ difference + trace + self.reference.trace - 2.0 * trace_sqrt)


class ResampledInceptionScore:
    """exp(E_x KL(p(y|x) || p(y))) of a weighted resample, the mean over `splits` consecutive blocks of
    the rows as palette.metrics.inception_score splits them (10, as the paper's tables; 1: the whole set)."""

    def __init__(self, probabilities, splits: int = 1):
        self.p = np.clip(np.asarray(probabilities, np.float64), 1e-12, None)
        self.n = len(self.p)
        self.entropy_term = np.einsum("ij,ij->i", self.p, np.log(self.p))
        self.blocks = np.array_split(np.arange(self.n), max(1, min(splits, self.n)))

    def __call__(self, weights=None) -> float:
        w = np.ones(self.n) if weights is None else np.asarray(weights, np.float64)
        scores = []
        for block in self.blocks:
            w_block, p_block = w[block], self.p[block]
            total = w_block.sum()
            if total == 0:
                continue
            marginal = w_block @ p_block / total
            kl = self.entropy_term[block] - p_block @ np.log(marginal)
            scores.append(math.exp(w_block @ kl / total))
        return float(np.mean(scores))


class ResampledMean:
    def __init__(self, values):
        self.values = np.asarray(values, np.float64)
        self.n = len(self.values)

    def __call__(self, weights=None) -> float:
        if weights is None:
            return float(self.values.mean())
        return float(np.asarray(weights, np.float64) @ self.values / self.n)


def fid_too_few_images(n: int, dimension: int) -> str | None:
    """Why an FID interval over n images of `dimension` features is not to be read, or None."""
    if n < FID_IMAGES_PER_DIMENSION * dimension:
        return (f"FID over {n} images of {dimension} features: fewer than {FID_IMAGES_PER_DIMENSION} per feature, "
                "where its interval is not calibrated (docs/verdicts.md)")
    return None


def claim_seed(claim_id: str, seed: int = SEED) -> int:
    """A seed per claim, so its interval does not depend on the other claims."""
    return (seed * 1_000_003 + zlib.crc32(claim_id.encode())) % (2**32)


def bootstrap_difference(statistic_a, statistic_b, n_a: int, n_b: int, *, paired: bool, samples: int, seed: int,
                         confidence: float = CONFIDENCE, interval: str = "basic") -> dict:
    """A - B on all images and the basic (pivotal) bootstrap interval of A - B, of A and of B.

    Paired: one draw of image indices (as counts per image) serves both sides. The interval of a
    statistic T with value t on the images is [2t - q_hi, 2t - q_lo], q the resampled T's quantiles:
    the spread of T* - t about t stands for the spread of t about the truth. The percentile interval
    [q_lo, q_hi] would assume T* is centred on the truth; FID is not: a resample repeats images, which
    narrows its covariance and raises its FID, more for the more varied side, so the percentile
    interval of an FID difference sits beside the truth (docs/verdicts.md, "Calibration", measures both;
    `interval="percentile"` gives the percentile interval for that comparison). `interval="centred"`
    moves the resamples' spread about their mean onto t: an interval for the statistic's expected
    value at this image count, for comparing with a number measured at the same count (a paper cell:
    its FID carries the same small-sample bias as ours, so the bias is not to be removed there).
    """
    if interval not in ("basic", "percentile", "centred"):
        raise ValueError(f"interval must be 'basic', 'percentile' or 'centred', got {interval!r}")
    rng = np.random.default_rng(seed)
    values = np.empty((samples, 2))
    for index in range(samples):
        weights_a = np.bincount(rng.integers(0, n_a, n_a), minlength=n_a)
        weights_b = weights_a if paired else np.bincount(rng.integers(0, n_b, n_b), minlength=n_b)
        values[index] = statistic_a(weights_a), statistic_b(weights_b)
    value_a, value_b = statistic_a(), statistic_b()
    return {"difference": value_a - value_b,
            **_interval("", value_a - value_b, values[:, 0] - values[:, 1], confidence, interval),
            **_interval("a_", value_a, values[:, 0], confidence, interval),
            **_interval("b_", value_b, values[:, 1], confidence, interval)}


def _interval(prefix: str, value: float, resampled: np.ndarray, confidence: float, kind: str) -> dict:
    resampled = resampled[np.isfinite(resampled)]
    if not len(resampled) or not math.isfinite(value):
        return {f"{prefix}lower": math.nan, f"{prefix}upper": math.nan}
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(resampled, [tail, 1.0 - tail]))
    if kind == "percentile":
        return {f"{prefix}lower": low, f"{prefix}upper": high}
    if kind == "centred":
        shift = value - float(resampled.mean())
        return {f"{prefix}lower": low + shift, f"{prefix}upper": high + shift}
    return {f"{prefix}lower": 2.0 * value - high, f"{prefix}upper": 2.0 * value - low}


def decide(kind: str, better_sign: int, lower: float, upper: float, margin: float | None = None) -> tuple[str, str]:
    """The verdict and its reason from an interval of A - B.

    kind "better": the claim is that A beats B; `better_sign` is -1 when lower is better (FID).
    kind "close": A is no worse than B by more than `margin` (non-inferiority).
    kind "similar": A and B differ by less than `margin` either way (equivalence).
    """
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return "inconclusive", "no finite interval"
    if kind == "better":
        if lower <= 0.0 <= upper:
            return "inconclusive", "the interval contains zero"
        claimed = (lower > 0.0) == (better_sign > 0)
        return ("holds", "the interval excludes zero on the claimed side") if claimed else ("contradicted", "the interval excludes zero on the other side")
    if margin is None or not math.isfinite(margin):
        return "inconclusive", "no margin"
    if kind == "close":
        worse_lower, worse_upper = sorted((-better_sign * lower, -better_sign * upper))
        if worse_upper < margin:
            return "holds", f"the interval lies within the margin ({margin:.3g} worse at most)"
        if worse_lower > margin:
            return "contradicted", f"the interval lies beyond the margin ({margin:.3g} worse)"
        return "inconclusive", f"the interval straddles the margin ({margin:.3g})"
    if kind == "similar":
        if -margin < lower and upper < margin:
            return "holds", f"the interval lies within +-{margin:.3g}"
        if lower > margin or upper < -margin:
            return "contradicted", f"the interval lies outside +-{margin:.3g}"
        return "inconclusive", f"the interval straddles +-{margin:.3g}"
    raise ValueError(f"unknown claim kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# Per-image files
# ---------------------------------------------------------------------------------------------



class NotMeasured(Exception):
    """A side of a comparison has no number; the message says why."""


@dataclass
class Side:
    """One side of a comparison: a run of ours (or the ground-truth rows) and its per-image file,
    with the ways that run's methods depart from the paper's (palette.departures)."""

    label: str
    metrics_path: str | None = None
    missing: str | None = None  # why there is no run, when there is none
    departures: list = field(default_factory=list)
    _data: dict | None = field(default=None, repr=False)
    _json: dict | None = field(default=None, repr=False)

    def load(self) -> tuple[dict, dict]:
        if self.missing:
            raise NotMeasured(self.missing)
        if self._data is None:
            json_path = Path(self.metrics_path)
            npz_path = json_path.with_suffix(".npz")
            if not json_path.exists():
                raise NotMeasured(f"{json_path} is missing")
            if not npz_path.exists():
                raise NotMeasured(f"{npz_path} (per-image values) is missing")
            self._json = json.loads(json_path.read_text())
            self._data = load_per_image(npz_path)
        return self._data, self._json

    def names(self) -> list[str]:
        return [str(name) for name in self.load()[0]["names"]]


def load_per_image(npz_path: Path) -> dict[str, np.ndarray]:
    """The per-image file of one run, checked: it opens (palette.frechet.read_npz), has a row
    per name in every array, and holds no NaN (nor an inf but PSNR's of identical images), so a
    damaged file is named in one line (ValueError) instead of skewing an interval."""
    data = read_npz(npz_path, "per-image values")
    names = data.get("names")
    if names is None:
        raise NotMeasured(f"{npz_path} has no 'names'")
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise ValueError(f"{npz_path}: 'names' is not a list of image names ({names.dtype}, shape {list(names.shape)})")
    for key, values in data.items():
        if key == "names":
            continue
        if values.ndim == 0 or values.shape[0] != len(names):
            raise ValueError(f"{npz_path}: '{key}' has shape {list(values.shape)}, not one row per image "
                             f"({len(names)} names)")
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values)
            if key == "psnr":
                bad &= values != np.inf  # the PSNR of identical images
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise ValueError(f"{npz_path}: '{key}' holds {int(bad.sum())} non-finite values "
                                 f"(first at image {names[row]})")
    return data


class Zero:
    """The other side of a one-sided interval."""

    def __call__(self, weights=None) -> float:
        return 0.0


class Statistics:
    """Statistic builders shared across claims (reference statistics, FID Gram matrices and the
    one-sided intervals of the paper's cells cached)."""

    def __init__(self, seed: int = SEED, samples: int = BOOTSTRAP_SAMPLES, fid_samples: int = FID_BOOTSTRAP_SAMPLES):
        self.seed, self.samples, self.fid_samples = seed, samples, fid_samples
        self._references: dict[str, ReferenceStatistics] = {}
        self._fids: dict[tuple, ResampledFid] = {}
        self._intervals: dict[tuple, tuple] = {}

    def reference(self, side: Side) -> ReferenceStatistics:
        _, values = side.load()
        reference = values.get("fid_reference") or {}
        path = reference.get("path") if isinstance(reference, dict) else None
        if not path:
            raise NotMeasured(f"{side.metrics_path} names no fid_reference.path")
        if not Path(path).exists():
            raise NotMeasured(f"reference statistics {path} are missing")
        if path not in self._references:
            self._references[path] = ReferenceStatistics.load(path)
        return self._references[path]

    def per_image(self, side: Side, metric: str) -> tuple[str, np.ndarray]:
        data, _ = side.load()
        key = PER_IMAGE_KEYS[metric]
        if key not in data and metric == "ca" and CA_FALLBACK_KEY in data:
            key = CA_FALLBACK_KEY
        if key not in data:
            raise NotMeasured(f"{Path(side.metrics_path).with_suffix('.npz')} has no '{key}' ({METRIC_LABELS[metric]} not computed)")
        return key, data[key]

    def build(self, side: Side, metric: str, order=None):
        _, values = self.per_image(side, metric)
        values = values if order is None else values[order]
        if metric == "fid":
            reference = self.reference(side)
            cache_key = (side.metrics_path, reference.path, None if order is None else tuple(order))
            if cache_key not in self._fids:
                try:
                    self._fids[cache_key] = ResampledFid(values, reference)
                except ValueError as error:
                    raise ValueError(f"{Path(side.metrics_path).with_suffix('.npz')} against {reference.path}: {error}") from None
            return self._fids[cache_key]
        if metric == "is":
            return ResampledInceptionScore(values, IS_SPLITS)
        return ResampledMean(values)

    def interval(self, side: Side, metric: str) -> tuple[float, float, float]:
        """(value, lower, upper) of one run's statistic at its image count (the centred interval:
        a paper number is compared at the paper's count, where its FID has the same bias as ours)."""
        key = (side.metrics_path, metric)
        if key not in self._intervals:
            statistic = self.build(side, metric)
            samples = self.fid_samples if metric == "fid" else self.samples
            result = bootstrap_difference(statistic, Zero(), statistic.n, statistic.n, paired=True, samples=samples,
                                          seed=claim_seed(f"{side.metrics_path}|{metric}", self.seed), interval="centred")
            self._intervals[key] = (result["difference"], result["a_lower"], result["a_upper"])
        return self._intervals[key]


# ---------------------------------------------------------------------------------------------
# Numbers reproduced: our value against the paper's, where the protocols agree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How the paper evaluated a table: the evaluation set and its size, and the FID reference
    statistics and their size (docs/paper.md, "Which set and reference each table uses")."""

    label: str
    evaluation_set: str
    count: int
    reference: str
    reference_count: int


PROTOCOLS = {
    "fid5k": Protocol("FID-5K: the first 5,000 ImageNet validation images against 5,000 others", "fid5k", 5000,
                      FID5K_REFERENCE_NAME, 5000),
    "ctest10k": Protocol("ctest10k against the 50,000 ImageNet validation images", "ctest10k", 10000, "imagenet_val50k", 50000),
    "places10k": Protocol("places10k against the 36,500 Places2 validation images", "places10k", 10950, "places2_val36500", 36500),
}
# The networks behind each metric are the paper's (the TF Inception of 2015 for FID, IS and PD;
# LPIPS AlexNet for diversity), except CA, which is the paper's only with the ResNet-50.
PAPER_CLASSIFIER = "resnet50"


def protocol_problem(side: Side, metric: str, protocol: Protocol) -> str | None:
    """Why a run's number cannot be compared with the paper's under `protocol`, or None."""
    data, values = side.load()
    evaluated = values.get("evaluation_set") or {}
    name, n = evaluated.get("name"), len(data["names"])
    if name != protocol.evaluation_set:
        return f"evaluated on {name or 'an unnamed set'}, the paper on {protocol.evaluation_set}"
    if n != protocol.count:
        return f"{n:,} images, the paper's {protocol.count:,}"
    if metric == "fid":
        reference = values.get("fid_reference") or {}
        if reference.get("name") != protocol.reference or reference.get("count") != protocol.reference_count:
            count = reference.get("count")
            return (f"FID against {reference.get('name', 'unnamed statistics')} ({count:,} images)" if isinstance(count, int)
                    else f"FID against {reference.get('name', 'unnamed statistics')}") + \
                f", the paper's against {protocol.reference} ({protocol.reference_count:,})"
    if metric == "ca" and values.get("ca_classifier") != PAPER_CLASSIFIER:
        return f"CA by {values.get('ca_classifier') or 'another classifier'}, the paper's by ResNet-50"
    return None


def number_verdict(statistics: Statistics, side: Side, metric: str, paper: float | None, protocol: str | None) -> dict | None:
    """Is the paper's number reproduced? Our value and interval, the paper's value, and the verdict:
    *reproduced* when the paper's value lies inside our interval widened by NUMBER_TOLERANCE of it,
    *not reproduced* when outside, *not comparable* when the protocols differ (reason given),
    *not measured* when we have no number. None when the paper gives no number."""
    if paper is None:
        return None
    row = {"paper": paper, "ours": None, "lower": None, "upper": None}
    try:
        problem = protocol_problem(side, metric, PROTOCOLS[protocol]) if protocol else "the paper gives no protocol for this data set"
        value, lower, upper = statistics.interval(side, metric)
    except NotMeasured as reason:
        return dict(row, verdict="not measured", reason=str(reason))
    scale = 0.01 if metric == "ca" else 1.0  # the paper's CA is in %, ours a fraction
    row.update(ours=value / scale, lower=lower / scale, upper=upper / scale)
    if problem:
        return dict(row, verdict="not comparable", reason=problem)
    slack = NUMBER_TOLERANCE * abs(paper)
    if row["lower"] - slack <= paper <= row["upper"] + slack:
        return dict(row, verdict="reproduced", reason=f"the paper's {paper:g} lies in our interval widened by {slack:.3g}")
    side_of = "above" if paper > row["upper"] else "below"
    return dict(row, verdict="not reproduced", reason=f"the paper's {paper:g} lies {side_of} our interval widened by {slack:.3g}")


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------

PAPER, OURS = "paper", "ours"  # whose finding a claim tests


@dataclass
class Claim:
    finding: str  # the finding this row tests
    text: str  # the comparison, A against B
    metric: str
    kind: str  # better | close | similar
    a: Side
    b: Side
    paper: str  # the paper's numbers, as text
    note: str = ""
    source: str = PAPER  # PAPER: a finding of the paper's; OURS: one of this project's (not in the paper's tally)
    paper_a: float | None = None  # the paper's numbers for the two sides, where it gives them
    paper_b: float | None = None
    protocol: str | None = None  # how the paper evaluated them: a key of PROTOCOLS
    # the sides' numbers against the paper's stand even when the comparison cannot be made (the
    # other side not measured): a model trained elsewhere is judged against the paper's number alone
    numbers_alone: bool = False

    @property
    def id(self) -> str:
        return f"{self.text}|{self.metric}|{self.a.label}|{self.b.label}"


def evaluate_claim(claim: Claim, statistics: Statistics, seed: int | None = None, samples: int | None = None,
                   fid_samples: int | None = None) -> dict:
    """One row of the section: both sides, the difference, its interval, the direction verdict, and
    for each side the paper gives a number for, whether that number is reproduced."""
    seed = statistics.seed if seed is None else seed
    samples = statistics.samples if samples is None else samples
    fid_samples = statistics.fid_samples if fid_samples is None else fid_samples
    better_sign = -1 if claim.metric in LOWER_IS_BETTER else 1
    row = {"finding": claim.finding, "claim": claim.text, "metric": METRIC_LABELS[claim.metric], "paper": claim.paper, "a": claim.a.label,
           "b": claim.b.label, "a_value": None, "b_value": None, "n_a": None, "n_b": None, "difference": None, "lower": None, "upper": None,
           "note": claim.note, "source": claim.source, "departures_a": list(claim.a.departures), "departures_b": list(claim.b.departures),
           "number_a": None, "number_b": None}
    try:
        names_a, names_b = claim.a.names(), claim.b.names()
        paired = set(names_a) == set(names_b) and len(names_a) == len(names_b)
        order_b = None
        if paired and names_a != names_b:
            position = {name: index for index, name in enumerate(names_b)}
            order_b = np.array([position[name] for name in names_a])
        statistic_a = statistics.build(claim.a, claim.metric)
        statistic_b = statistics.build(claim.b, claim.metric, order_b)
        if claim.metric == "fid" and statistics.reference(claim.a).path != statistics.reference(claim.b).path:
            raise NotMeasured("the two sides' FIDs use different reference statistics")
    except NotMeasured as reason:
        row.update(verdict="inconclusive", reason=f"not measured: {reason}")
        if claim.numbers_alone:
            row["number_a"] = number_verdict(statistics, claim.a, claim.metric, claim.paper_a, claim.protocol)
            row["number_b"] = number_verdict(statistics, claim.b, claim.metric, claim.paper_b, claim.protocol)
        return row
    row["number_a"] = number_verdict(statistics, claim.a, claim.metric, claim.paper_a, claim.protocol)
    row["number_b"] = number_verdict(statistics, claim.b, claim.metric, claim.paper_b, claim.protocol)
    row.update(n_a=statistic_a.n, n_b=statistic_b.n, a_value=statistic_a(), b_value=statistic_b())
    n = min(statistic_a.n, statistic_b.n)
    if n < 2:
        row.update(verdict="inconclusive", reason=f"too few images (n = {n} < {MIN_IMAGES})")
        return row
    samples = fid_samples if claim.metric == "fid" else samples
    result = bootstrap_difference(statistic_a, statistic_b, statistic_a.n, statistic_b.n, paired=paired, samples=samples,
                                  seed=claim_seed(claim.id, seed))
    row.update(difference=result["difference"], lower=result["lower"], upper=result["upper"], paired=paired)
    margin = CLOSE_MARGIN * abs(row["b_value"]) if claim.kind != "better" else None
    small_fid = [side for side in (claim.a, claim.b) if claim.metric == "fid" and not fid_comparable(side)]
    too_few_features = fid_too_few_images(n, statistic_a.dim) if claim.metric == "fid" else None
    if n < MIN_IMAGES:
        row.update(verdict="inconclusive", reason=f"too few images (n = {n} < {MIN_IMAGES})")
    elif too_few_features:
        row.update(verdict="inconclusive", reason=too_few_features)
    elif margin is not None and small_fid:
        # FID falls as n grows; below the paper's image count it is larger than the paper's, and a
        # margin of 10 % of it is a margin of a number that says little about the models
        row.update(verdict="inconclusive", reason=f"FID on {small_fid[0].load()[0]['names'].shape[0]} images is below the paper's image count, "
                   f"so a margin of {CLOSE_MARGIN:.0%} of it is not the paper's margin")
    else:
        verdict, reason = decide(claim.kind, better_sign, result["lower"], result["upper"], margin)
        row.update(verdict=verdict, reason=reason)
    if not paired:
        row["note"] = (row["note"] + " " if row["note"] else "") + "Unpaired resampling: the two sides were evaluated on different images."
    return row


def fid_comparable(side: Side) -> bool:
    """The metrics JSON's `fid_comparable` (its n reaches the paper's count for the table); without
    that key, whether n reaches Inception's 2048 features (below it the covariance is singular)."""
    data, values = side.load()
    flag = values.get("fid_comparable")
    return bool(flag) if isinstance(flag, bool) else len(data["names"]) >= 2048


class Runs:
    """Finds our run for a role, the way palette.report fills the paper's tables: the experiment
    with that role (and training task) evaluated on the task variant, at its first sampler."""

    def __init__(self, experiments: dict, runs, metric_paths, results_dir, samplers: dict | None = None,
                 train_configs: dict | None = None, externals: dict | None = None):
        self.experiments = experiments
        self.paths = {tuple(run): str(path) for run, path in zip(runs, metric_paths)}
        self.samplers: dict[tuple, list] = {}
        for experiment, task, sampler in runs:
            self.samplers.setdefault((experiment, task), []).append(sampler)
        self.results_dir = Path(results_dir)
        self.sampler_settings = samplers or {}
        self.train_configs = train_configs or {}
        self.externals = externals or {}  # the records of role-external experiments (palette.external)

    def side(self, label: str, experiment: str, task: str, sampler: str) -> Side:
        departures = run_departures(self.train_configs.get(experiment, self.experiments[experiment].get("train")),
                                    self.sampler_settings.get(sampler))
        record = self.externals.get(experiment)
        if record is not None:  # trained elsewhere: its record's departures (palette import's), then its run's sampler's
            departures = list(dict.fromkeys([*record.get("departures", []), *run_departures(None, self.sampler_settings.get(sampler))]))
        return Side(label, self.paths[(experiment, task, sampler)], departures=departures)

    def find(self, label: str, role: str | tuple, task: str, train_task: str | None = None, sampler: str | None = None) -> Side:
        roles = role if isinstance(role, tuple) else (role,)
        for wanted in roles:
            for name, settings in self.experiments.items():
                if settings.get("role", "task_model") != wanted or (train_task and settings["train"]["task"] != train_task):
                    continue
                samplers = self.samplers.get((name, task))
                if samplers:
                    chosen = sampler if sampler in samplers else samplers[0]
                    return self.side(f"{label} ({name} / {task} / {chosen})", name, task, chosen)
        trained = f" trained on {train_task}" if train_task else ""
        return Side(label, missing=f"no experiment with role {' or '.join(map(repr, roles))}{trained} is evaluated on {task}")

    def task_of(self, role: str, train_task: str | None = None) -> str | None:
        """The first task variant the experiment with `role` is evaluated on."""
        for name, settings in self.experiments.items():
            if settings.get("role", "task_model") == role and (train_task is None or settings["train"]["task"] == train_task):
                return settings["evaluate_on"][0]
        return None

    def ground_truth(self, task: str) -> Side:
        return Side(f"ground truth ({task})", str(self.results_dir / "metrics" / "ground_truth" / f"{task}.json"))


def is_thousand_step(settings: dict) -> bool:
    """The paper's sampler: Algorithm 2 over every step of its 1000-step schedule, with its variance,
    no clipping and unscaled noise (a sampler with a departure of method is not it)."""
    resolved = {**PAPER_SAMPLER, **resolve_sampler(settings)}
    every_step = resolved["name"] == "paper" or (resolved["name"] == "ancestral" and resolved["steps"] >= resolved["schedule_steps"])
    same = all(resolved[key] == PAPER_SAMPLER[key] for key in ("variance", "clip_x0", "noise_scale", "beta_start", "beta_end", "schedule_steps"))
    return every_step and same


def _pair(a: float | None, b: float | None) -> str:
    return f"{'-' if a is None else f'{a:g}'} vs {'-' if b is None else f'{b:g}'}"


# The claims' tables (palette.paper_numbers) and the rows of them each side is.
TABLE_1, TABLE_2, TABLE_3, TABLE_4 = ("Colorization (paper Table 1)", "Inpainting (paper Table 2)", "Uncropping (paper Table 3)",
                                      "JPEG restoration (paper Table 4)")
TABLE_APPENDIX = "Colorization on ctest10k (paper appendix)"
TABLE_6, TABLE_7, TABLE_8 = "Multi-task model (paper Table 6)", "L1 versus L2 loss (paper Table 7)", "Self-attention ablation (paper Table 8)"
REGRESSION_TASKS = {"colorization": (TABLE_1, "Palette", "Regression (L2)"),
                    **{f"jpeg_q{q}": (TABLE_4, f"Palette, QF {q}", f"Regression (L2), QF {q}") for q in (5, 10, 20)}}
ATTENTION_ROWS = {"attention_local": "Local self-attention", "attention_none": "No attention, 2x res blocks", "attention_dilated": "Dilated convolutions"}
MULTITASK_ROWS = {"jpeg_q5": ("Multi-task, JPEG QF 5", "Specialist, JPEG QF 5"),
                  "inpainting_center": ("Multi-task, 128x128 centre inpainting", "Specialist, 128x128 centre inpainting"),
                  COLORIZATION_CTEST10K: ("Multi-task, colorization", "Specialist, colorization")}
GROUND_TRUTH_ROWS = {"colorization": (TABLE_1, "Palette", "Original images"),
                     "inpainting_freeform_10_20": (TABLE_2, "Palette, 10-20 % free-form", "Ground truth")}
TASK_TRAINING = {"colorization": "colorization", COLORIZATION_CTEST10K: "colorization", "jpeg_q5": "jpeg", "jpeg_q10": "jpeg", "jpeg_q20": "jpeg", "inpainting_center": "inpainting",
                 "inpainting_freeform_10_20": "inpainting", "inpainting_freeform_20_30": "inpainting", "inpainting_freeform_30_40": "inpainting",
                 "uncropping_right": "uncropping", "super_resolution": "super_resolution"}


class _Numbers:
    """The paper's numbers for this run's data set, and the protocol of their table."""

    def __init__(self, dataset_kind: str):
        self.kind = dataset_kind

    def cell(self, table: str, row: str, metric: str) -> float | None:
        return paper_cell(table, row, metric, self.kind)

    def claim(self, finding, text, metric, kind, a, b, table, row_a, row_b, note="", source=PAPER) -> Claim:
        paper_a = self.cell(table, row_a, metric) if row_a else None
        paper_b = self.cell(table, row_b, metric) if row_b else None
        paper = _pair(paper_a, paper_b) if paper_a is not None or paper_b is not None else "not tabulated"
        return Claim(finding, text, metric, kind, a, b, paper, note, source, paper_a, paper_b, table_protocol(table, self.kind))


def paper_claims(experiments: dict, runs, metric_paths, samplers: dict, results_dir, dataset_kind: str = "imagenet",
                 train_configs: dict | None = None, externals: dict | None = None) -> list[Claim]:
    """Every comparison the section shows: the paper's findings in its order, then our own.
    `externals`: the records of the role-external experiments (palette.external.load_records)."""
    find = Runs(experiments, runs, metric_paths, results_dir, samplers, train_configs, externals)
    numbers = _Numbers(dataset_kind)
    claims = []
    margin = f"{CLOSE_MARGIN:.0%}"

    # the colorization variant on the test list: its own on ImageNet (FID-5K is Table 1's), else the one
    on_test_list = colorization_on_test_list(dataset_kind)
    regression_tasks = dict(REGRESSION_TASKS)
    if on_test_list != "colorization":
        regression_tasks[on_test_list] = (TABLE_APPENDIX, "Palette (L2)", "Regression (L2)")

    finding = "Palette beats the regression baseline on FID, IS, CA and PD (Tables 1, 4, appendix)"
    for task, (table, palette_row, regression_row) in regression_tasks.items():
        train_task = TASK_TRAINING[task]
        palette = find.find("Palette", "task_model", task, train_task)
        regression = find.find("regression", "regression", task, train_task)
        for metric, wording in (("fid", "lower FID"), ("is", "higher IS"), ("ca", "higher CA"), ("pd", "lower PD")):
            claims.append(numbers.claim(finding, f"{task}: Palette has {wording} than regression", metric, "better", palette, regression,
                                        table, palette_row, regression_row))

    finding = "L2 gives more diverse samples than L1 at similar FID (Table 7)"
    for train_task, label in (("colorization", "Colorization"), ("inpainting", "Inpainting")):
        task = find.task_of("loss_l1", train_task) or (on_test_list if train_task == "colorization" else "inpainting_center")
        l2 = find.find("L2", "task_model", task, train_task)
        l1 = find.find("L1", "loss_l1", task, train_task)
        claims.append(numbers.claim(finding, f"{task}: L2 has higher LPIPS diversity than L1", "lpips_diversity", "better", l2, l1,
                                    TABLE_7, f"{label}, L2", f"{label}, L1"))
        claims.append(numbers.claim(finding, f"{task}: L2's FID is within {margin} of L1's", "fid", "similar", l2, l1,
                                    TABLE_7, f"{label}, L2", f"{label}, L1", f"'Similar' means the interval lies within +-{margin} of L1's FID."))

    finding = "Global self-attention beats local attention, no attention and dilated convolutions (Table 8)"
    for role, row in ATTENTION_ROWS.items():
        task = find.task_of(role, "inpainting") or "inpainting_center"
        global_attention = find.find("global attention", ("attention_global", "task_model"), task, "inpainting")
        other = find.find(row.lower(), role, task, "inpainting")
        claims.append(numbers.claim(finding, f"{task}: global self-attention has lower FID than {row.lower()}", "fid", "better",
                                    global_attention, other, TABLE_8, "Global self-attention", row))

    finding = "The multi-task model is close to each specialist, and beats the JPEG one (Table 6)"
    for task, (multitask_row, specialist_row) in MULTITASK_ROWS.items():
        task = on_test_list if task == COLORIZATION_CTEST10K else task
        multitask = find.find("multi-task", "multitask", task, "multitask")
        specialist = find.find("specialist", "task_model", task, TASK_TRAINING[task])
        claims.append(numbers.claim(finding, f"{task}: the multi-task model's FID is at most {margin} above the specialist's", "fid", "close",
                                    multitask, specialist, TABLE_6, multitask_row, specialist_row,
                                    f"'Close' means the interval of (multi-task - specialist) stays below {margin} of the specialist's FID."))
        if task == "jpeg_q5":
            claims.append(numbers.claim(finding, f"{task}: the multi-task model has lower FID than the JPEG specialist", "fid", "better",
                                        multitask, specialist, TABLE_6, multitask_row, specialist_row))

    finding = "Palette's FID approaches the ground truth's (Tables 1, 2)"
    for task, (table, palette_row, truth_row) in GROUND_TRUTH_ROWS.items():
        palette = find.find("Palette", "task_model", task, TASK_TRAINING[task])
        claims.append(numbers.claim(finding, f"{task}: Palette's FID is at most {margin} above the ground truth's", "fid", "close",
                                    palette, find.ground_truth(task), table, palette_row, truth_row,
                                    "The ground truth: the evaluation targets scored against the same reference statistics."))

    finding = "Conditional Palette beats an unconditional model used by imputation (Section 5)"
    unconditional_claims = []
    for name, settings in experiments.items():
        if settings.get("role") != "unconditional_imputation":
            continue
        for task in settings["evaluate_on"]:
            palette = find.find("Palette", "task_model", task, TASK_TRAINING.get(task))
            unconditional = find.find("unconditional", "unconditional_imputation", task)
            unconditional_claims.append(Claim(finding, f"{task}: Palette has lower FID than unconditional imputation", "fid", "better",
                                              palette, unconditional, "qualitative"))
    if not unconditional_claims:
        absent = "no experiment with role 'unconditional_imputation' in this configuration"
        unconditional_claims.append(Claim(finding, "Palette has lower FID than unconditional imputation", "fid", "better",
                                          Side("Palette", missing=absent), Side("unconditional", missing=absent), "qualitative"))
    claims += unconditional_claims
    return claims + own_claims(find, samplers) + external_claims(find, numbers)


def own_claims(find: Runs, samplers: dict) -> list[Claim]:
    """Findings of this project's, not the paper's: kept apart from the paper's tally."""
    claims = []
    margin = f"{CLOSE_MARGIN:.0%}"
    finding = "Regression has higher PSNR and SSIM than Palette (ours: the paper's tables have no pixel metrics)"
    for task in REGRESSION_TASKS:
        palette = find.find("Palette", "task_model", task, TASK_TRAINING[task])
        regression = find.find("regression", "regression", task, TASK_TRAINING[task])
        for metric in ("psnr", "ssim"):
            claims.append(Claim(finding, f"{task}: regression has higher {METRIC_LABELS[metric]} than Palette", metric, "better", regression,
                                palette, "not in the paper", "Pixel metrics reward the blurry conditional mean a regression predicts, "
                                "hence the paper's FID / IS.", source=OURS))

    finding = "Fast samplers against the paper's 1000-step sampler (ours: the paper samples with 1000 steps only)"
    sampler_claims = []
    for (experiment, task), names in find.samplers.items():
        references = [name for name in names if name in samplers and is_thousand_step(samplers[name])]
        if not references:
            continue
        for name in names:
            if name in references or name not in samplers:
                continue
            steps = resolve_sampler(samplers[name]).get("steps", 1000)
            fast = find.side(f"{name} ({experiment} / {task})", experiment, task, name)
            slow = find.side(f"{references[0]} ({experiment} / {task})", experiment, task, references[0])
            sampler_claims.append(Claim(finding, f"{task}: {name} ({steps} steps) has FID at most {margin} above {references[0]}", "fid",
                                        "close", fast, slow, "not in the paper", source=OURS))
    if not sampler_claims:
        absent = "no experiment and task variant is sampled with both the 1000-step paper sampler and a faster one"
        sampler_claims.append(Claim(finding, f"a fast sampler's FID is at most {margin} above the 1000-step sampler's", "fid", "close",
                                    Side("fast sampler", missing=absent), Side("1000-step sampler", missing=absent), "not in the paper",
                                    source=OURS))
    return claims + sampler_claims


def external_claims(find: Runs, numbers: _Numbers) -> list[Claim]:
    """Each model trained elsewhere (role external, e.g. the public reproduction's, imported) on
    each task variant it is evaluated on: its FID against the paper's Palette number for that cell
    (number reproduced, where the protocol is the table's: the first of the paper's Palette rows
    for the variant that gives a number on this data set), and against our Palette's (within the
    margin: the direction). Ours, apart from the paper's tally; the numbers its own project
    reports go in the note."""
    claims = []
    margin = f"{CLOSE_MARGIN:.0%}"
    finding = "Models trained elsewhere against the paper's Palette and ours (ours: the paper evaluates only its own)"
    for name, settings in find.experiments.items():
        if settings.get("role") != EXTERNAL_ROLE:
            continue
        label = external_label(settings, find.externals.get(name))
        train_task = settings["train"]["task"]
        for task in settings["evaluate_on"]:
            samplers = find.samplers.get((name, task))
            external = (find.side(f"{label}: {name} / {task} / {samplers[0]}", name, task, samplers[0]) if samplers else
                        Side(label, missing=f"{name} is not sampled on {task}"))
            ours = find.find("our Palette", "task_model", task, train_task)
            rows = palette_rows(task, train_task, numbers.kind)
            cell = next(((table, row) for table, row in rows if numbers.cell(table.title, row.label, "fid") is not None),
                        rows[0] if rows else None)
            value = numbers.cell(cell[0].title, cell[1].label, "fid") if cell else None
            paper = f"Palette {value:g} ({cell[0].title}, {cell[1].label})" if value is not None else "not tabulated"
            note = " ".join(part for part in (
                "A's number reproduced: its FID against the paper's Palette number for this cell.", reported_text(settings, task))
                if part)
            claims.append(Claim(finding, f"{task}: {name}'s FID is within {margin} of our Palette's", "fid", "similar", external, ours,
                                paper, note, OURS, paper_a=value, protocol=table_protocol(cell[0].title, numbers.kind) if cell else None,
                                numbers_alone=True))
    return claims


VERDICTS = ("holds", "contradicted", "inconclusive")
NUMBER_VERDICTS = ("reproduced", "not reproduced", "not comparable", "not measured")


def _grouped(rows: list[dict]) -> list[dict]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row["finding"], []).append(row)
    return [{"finding": finding, "rows": group} for finding, group in groups.items()]


def reproduction_verdicts(experiments: dict, runs, metric_paths, samplers: dict, results_dir, *, seed: int = SEED,
                          samples: int = BOOTSTRAP_SAMPLES, fid_samples: int = FID_BOOTSTRAP_SAMPLES, dataset_kind: str = "imagenet",
                          train_configs: dict | None = None, statistics: Statistics | None = None,
                          externals: dict | None = None) -> dict:
    """The section's context: the paper's findings and our own, grouped, a count per verdict (the
    paper's alone; ours apart), the numbers-reproduced tally and the method's settings."""
    statistics = statistics or Statistics(seed, samples, fid_samples)
    rows = [evaluate_claim(claim, statistics) for claim in
            paper_claims(experiments, runs, metric_paths, samplers, results_dir, dataset_kind, train_configs, externals)]
    paper_rows = [row for row in rows if row["source"] == PAPER]
    own_rows = [row for row in rows if row["source"] == OURS]
    numbers = [row[key] for row in paper_rows for key in ("number_a", "number_b") if row[key]]
    return {
        "findings": _grouped(paper_rows),
        "own_findings": _grouped(own_rows),
        "counts": {verdict: sum(row["verdict"] == verdict for row in paper_rows) for verdict in VERDICTS},
        "own_counts": {verdict: sum(row["verdict"] == verdict for row in own_rows) for verdict in VERDICTS},
        "number_counts": {verdict: sum(number["verdict"] == verdict for number in numbers) for verdict in NUMBER_VERDICTS},
        "method": {"confidence": CONFIDENCE, "samples": samples, "fid_samples": fid_samples, "min_images": MIN_IMAGES, "margin": CLOSE_MARGIN,
                   "seed": seed, "tolerance": NUMBER_TOLERANCE, "fid_images_per_dimension": FID_IMAGES_PER_DIMENSION, "interval": "basic bootstrap"},
    }
