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

from palette.frechet import symmetric_sqrt

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000  # resamples for means and IS (microseconds each)
FID_BOOTSTRAP_SAMPLES = 100  # resamples for FID: two eigendecompositions each (about 25 ms apiece at n = 1000)
MIN_IMAGES = 10  # below this a percentile interval says little: the verdict is "inconclusive"
CLOSE_MARGIN = 0.10  # "close" means within 10 % of the reference side's value
SEED = 0

LOWER_IS_BETTER = {"fid", "pd"}
METRIC_LABELS = {"fid": "FID", "is": "IS", "psnr": "PSNR", "ssim": "SSIM", "pd": "PD", "lpips_diversity": "LPIPS diversity"}
# The per-image key each metric is computed from (palette's per-image file, see the module doc).
PER_IMAGE_KEYS = {"fid": "pool3", "is": "inception_probabilities", "psnr": "psnr", "ssim": "ssim", "pd": "perceptual_distance", "lpips_diversity": "lpips_diversity"}


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
        with np.load(path) as data:
            name = str(data["name"]) if "name" in data else Path(path).stem
            return cls(data["mu"], data["sigma"], name, str(path))


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
    """exp(E_x KL(p(y|x) || p(y))) of a weighted resample, over the whole set (one split)."""

    def __init__(self, probabilities):
        self.p = np.clip(np.asarray(probabilities, np.float64), 1e-12, None)
        self.n = len(self.p)
        self.entropy_term = np.einsum("ij,ij->i", self.p, np.log(self.p))

    def __call__(self, weights=None) -> float:
        w = np.ones(self.n) if weights is None else np.asarray(weights, np.float64)
        marginal = w @ self.p / self.n
        kl = self.entropy_term - self.p @ np.log(marginal)
        return float(math.exp(w @ kl / self.n))


class ResampledMean:
    def __init__(self, values):
        self.values = np.asarray(values, np.float64)
        self.n = len(self.values)

    def __call__(self, weights=None) -> float:
        if weights is None:
            return float(self.values.mean())
        return float(np.asarray(weights, np.float64) @ self.values / self.n)


def claim_seed(claim_id: str, seed: int = SEED) -> int:
    """A seed per claim, so its interval does not depend on the other claims."""
    return (seed * 1_000_003 + zlib.crc32(claim_id.encode())) % (2**32)


def bootstrap_difference(statistic_a, statistic_b, n_a: int, n_b: int, *, paired: bool, samples: int, seed: int, confidence: float = CONFIDENCE):
    """(A - B on all images, lower, upper): the percentile interval of A - B over resamples.

    Paired: one draw of image indices (as counts per image) serves both sides.
    """
    rng = np.random.default_rng(seed)
    differences = np.empty(samples)
    for index in range(samples):
        weights_a = np.bincount(rng.integers(0, n_a, n_a), minlength=n_a)
        weights_b = weights_a if paired else np.bincount(rng.integers(0, n_b, n_b), minlength=n_b)
        differences[index] = statistic_a(weights_a) - statistic_b(weights_b)
    differences = differences[np.isfinite(differences)]
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(differences, [tail, 1.0 - tail]) if len(differences) else (math.nan, math.nan)
    return statistic_a() - statistic_b(), float(lower), float(upper)


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
    """A side of a claim has no number; the message says why."""


@dataclass
class Side:
    """One side of a comparison: a run of ours (or the ground-truth rows) and its per-image file."""

    label: str
    metrics_path: str | None = None
    missing: str | None = None  # why there is no run, when there is none
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
            with np.load(npz_path, allow_pickle=False) as data:
                self._data = {key: data[key] for key in data.files}
            if "names" not in self._data:
                raise NotMeasured(f"{npz_path} has no 'names'")
        return self._data, self._json

    def names(self) -> list[str]:
        return [str(name) for name in self.load()[0]["names"]]


class Statistics:
    """Statistic builders shared across claims (reference statistics and FID Gram matrices cached)."""

    def __init__(self):
        self._references: dict[str, ReferenceStatistics] = {}
        self._fids: dict[tuple, ResampledFid] = {}

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

    def build(self, side: Side, metric: str, order=None):
        data, _ = side.load()
        key = PER_IMAGE_KEYS[metric]
        if key not in data:
            raise NotMeasured(f"{Path(side.metrics_path).with_suffix('.npz')} has no '{key}' ({METRIC_LABELS[metric]} not computed)")
        values = data[key] if order is None else data[key][order]
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
            return ResampledInceptionScore(values)
        return ResampledMean(values)


# ---------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------


@dataclass
class Claim:
    finding: str  # the paper's finding this row tests
    text: str  # the comparison, A against B
    metric: str
    kind: str  # better | close | similar
    a: Side
    b: Side
    paper: str  # the paper's numbers, as text
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.text}|{self.metric}|{self.a.label}|{self.b.label}"


def evaluate_claim(claim: Claim, statistics: Statistics, seed: int = SEED, samples: int = BOOTSTRAP_SAMPLES, fid_samples: int = FID_BOOTSTRAP_SAMPLES) -> dict:
    """One row of the section: both sides, the difference, its interval and the verdict."""
    better_sign = -1 if claim.metric in LOWER_IS_BETTER else 1
    row = {"finding": claim.finding, "claim": claim.text, "metric": METRIC_LABELS[claim.metric], "paper": claim.paper, "a": claim.a.label, "b": claim.b.label,
           "a_value": None, "b_value": None, "n_a": None, "n_b": None, "difference": None, "lower": None, "upper": None, "note": claim.note}
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
        return row
    row.update(n_a=statistic_a.n, n_b=statistic_b.n, a_value=statistic_a(), b_value=statistic_b())
    if min(statistic_a.n, statistic_b.n) < 2:
        row.update(verdict="inconclusive", reason=f"too few images (n = {min(statistic_a.n, statistic_b.n)} < {MIN_IMAGES})")
        return row
    samples = fid_samples if claim.metric == "fid" else samples
    difference, lower, upper = bootstrap_difference(statistic_a, statistic_b, statistic_a.n, statistic_b.n, paired=paired, samples=samples, seed=claim_seed(claim.id, seed))
    row.update(difference=difference, lower=lower, upper=upper, paired=paired)
    margin = CLOSE_MARGIN * abs(row["b_value"]) if claim.kind != "better" else None
    small_fid = [side for side in (claim.a, claim.b) if claim.metric == "fid" and not fid_comparable(side)]
    if min(statistic_a.n, statistic_b.n) < MIN_IMAGES:
        row.update(verdict="inconclusive", reason=f"too few images (n = {min(statistic_a.n, statistic_b.n)} < {MIN_IMAGES})")
    elif margin is not None and small_fid:
        # A margin of 10 % of an FID that is mostly small-sample bias would be wide enough to call
        # anything "close"; a direction still shows (both sides carry about the same bias).
        row.update(verdict="inconclusive", reason=f"FID on {small_fid[0].load()[0]['names'].shape[0]} images is mostly small-sample bias (below the paper's image count), "
                   f"so a margin of {CLOSE_MARGIN:.0%} of it means nothing")
    else:
        verdict, reason = decide(claim.kind, better_sign, lower, upper, margin)
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

    def __init__(self, experiments: dict, runs, metric_paths, results_dir):
        self.experiments = experiments
        self.paths = {tuple(run): str(path) for run, path in zip(runs, metric_paths)}
        self.samplers: dict[tuple, list] = {}
        for experiment, task, sampler in runs:
            self.samplers.setdefault((experiment, task), []).append(sampler)
        self.results_dir = Path(results_dir)

    def find(self, label: str, role: str | tuple, task: str, train_task: str | None = None, sampler: str | None = None) -> Side:
        roles = role if isinstance(role, tuple) else (role,)
        for wanted in roles:
            for name, settings in self.experiments.items():
                if settings.get("role", "task_model") != wanted or (train_task and settings["train"]["task"] != train_task):
                    continue
                samplers = self.samplers.get((name, task))
                if samplers:
                    chosen = sampler if sampler in samplers else samplers[0]
                    return Side(f"{label} ({name} / {task} / {chosen})", self.paths[(name, task, chosen)])
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


# The paper's numbers for the comparisons (docs/paper.md, ImageNet).
REGRESSION_NUMBERS = {
    "colorization": {"fid": (15.78, 17.89), "is": (200.8, 169.8)},
    "jpeg_q5": {"fid": (8.3, 29.0), "is": (133.6, 73.9)},
    "jpeg_q10": {"fid": (5.4, 18.0), "is": (180.5, 117.2)},
    "jpeg_q20": {"fid": (4.3, 11.5), "is": (208.7, 158.7)},
}
LOSS_NUMBERS = {"colorization": {"lpips_diversity": (0.15, 0.09), "fid": (3.4, 3.4)}, "inpainting": {"lpips_diversity": (0.13, 0.11), "fid": (3.6, 3.6)}}
ATTENTION_NUMBERS = {"attention_local": ("local self-attention", 9.4), "attention_none": ("no attention, 2x res blocks", 8.1), "attention_dilated": ("dilated convolutions", 8.0)}
MULTITASK_NUMBERS = {"jpeg_q5": "7.0 vs 8.3", "inpainting_center": "6.8 vs (not given)", "colorization": "3.7 vs (not given)"}
GROUND_TRUTH_NUMBERS = {"colorization": "15.78 vs 14.68", "inpainting_freeform_10_20": "5.1 vs 5.1"}
TASK_TRAINING = {"colorization": "colorization", "jpeg_q5": "jpeg", "jpeg_q10": "jpeg", "jpeg_q20": "jpeg", "inpainting_center": "inpainting",
                 "inpainting_freeform_10_20": "inpainting", "inpainting_freeform_20_30": "inpainting", "inpainting_freeform_30_40": "inpainting",
                 "uncropping_right": "uncropping", "super_resolution": "super_resolution"}


def _pair(numbers: tuple) -> str:
    return f"{numbers[0]:g} vs {numbers[1]:g}"


def is_thousand_step(settings: dict) -> bool:
    """The paper's sampler: Algorithm 2 over every step of a 1000-step (or longer) schedule."""
    return settings.get("name", "paper") == "paper" or (settings.get("name") == "ancestral" and settings.get("steps", 1000) >= 1000)


def paper_claims(experiments: dict, runs, metric_paths, samplers: dict, results_dir) -> list[Claim]:
    """Every comparison the section shows, in the paper's order."""
    find = Runs(experiments, runs, metric_paths, results_dir)
    claims = []
    margin = f"{CLOSE_MARGIN:.0%}"

    finding = "Palette beats the regression baseline on FID and IS, not on PSNR / SSIM (Tables 1, 4)"
    for task, numbers in REGRESSION_NUMBERS.items():
        train_task = TASK_TRAINING[task]
        palette = find.find("Palette", "task_model", task, train_task)
        regression = find.find("regression", "regression", task, train_task)
        claims.append(Claim(finding, f"{task}: Palette has lower FID than regression", "fid", "better", palette, regression, _pair(numbers["fid"])))
        claims.append(Claim(finding, f"{task}: Palette has higher IS than regression", "is", "better", palette, regression, _pair(numbers["is"]),
                            "IS over the whole set (one split); the tables' IS averages 10 splits."))
        for metric in ("psnr", "ssim"):
            claims.append(Claim(finding, f"{task}: regression has higher {METRIC_LABELS[metric]} than Palette", metric, "better", regression, palette,
                                "not tabulated", "Pixel metrics reward the blurry conditional mean a regression predicts, hence the paper's FID / IS."))

    finding = "L2 gives more diverse samples than L1 at similar FID (Table 7)"
    for train_task, numbers in LOSS_NUMBERS.items():
        task = find.task_of("loss_l1", train_task) or ("colorization" if train_task == "colorization" else "inpainting_center")
        l2 = find.find("L2", "task_model", task, train_task)
        l1 = find.find("L1", "loss_l1", task, train_task)
        claims.append(Claim(finding, f"{task}: L2 has higher LPIPS diversity than L1", "lpips_diversity", "better", l2, l1, _pair(numbers["lpips_diversity"])))
        claims.append(Claim(finding, f"{task}: L2's FID is within {margin} of L1's", "fid", "similar", l2, l1, _pair(numbers["fid"]),
                            f"'Similar' means the interval lies within +-{margin} of L1's FID."))

    finding = "Global self-attention beats local attention, no attention and dilated convolutions (Table 8)"
    for role, (name, number) in ATTENTION_NUMBERS.items():
        task = find.task_of(role, "inpainting") or "inpainting_center"
        global_attention = find.find("global attention", ("attention_global", "task_model"), task, "inpainting")
        other = find.find(name, role, task, "inpainting")
        claims.append(Claim(finding, f"{task}: global self-attention has lower FID than {name}", "fid", "better", global_attention, other, f"7.4 vs {number:g}"))

    finding = "The multi-task model is close to each specialist (Table 6)"
    for task, numbers in MULTITASK_NUMBERS.items():
        multitask = find.find("multi-task", "multitask", task, "multitask")
        specialist = find.find("specialist", "task_model", task, TASK_TRAINING[task])
        claims.append(Claim(finding, f"{task}: the multi-task model's FID is at most {margin} above the specialist's", "fid", "close", multitask, specialist, numbers,
                            f"'Close' means the interval of (multi-task - specialist) stays below {margin} of the specialist's FID."))

    finding = "Palette's FID approaches the ground truth's (Tables 1, 2)"
    for task, numbers in GROUND_TRUTH_NUMBERS.items():
        palette = find.find("Palette", "task_model", task, TASK_TRAINING[task])
        claims.append(Claim(finding, f"{task}: Palette's FID is at most {margin} above the ground truth's", "fid", "close", palette, find.ground_truth(task), numbers,
                            "The ground truth: the evaluation targets scored against the same reference statistics."))

    finding = "Fast samplers against the paper's 1000-step sampler (not in the paper)"
    sampler_claims = []
    for (experiment, task), names in find.samplers.items():
        references = [name for name in names if name in samplers and is_thousand_step(samplers[name])]
        if not references:
            continue
        for name in names:
            if name in references or name not in samplers:
                continue
            steps = samplers[name].get("steps", 1000)
            fast = Side(f"{name} ({experiment} / {task})", find.paths[(experiment, task, name)])
            slow = Side(f"{references[0]} ({experiment} / {task})", find.paths[(experiment, task, references[0])])
            sampler_claims.append(Claim(finding, f"{task}: {name} ({steps} steps) has FID at most {margin} above {references[0]}", "fid", "close", fast, slow,
                                        "the paper samples with 1000 steps only"))
    if not sampler_claims:
        absent = "no experiment and task variant is sampled with both the 1000-step paper sampler and a faster one"
        sampler_claims.append(Claim(finding, f"a fast sampler's FID is at most {margin} above the 1000-step sampler's", "fid", "close",
                                    Side("fast sampler", missing=absent), Side("1000-step sampler", missing=absent), "the paper samples with 1000 steps only"))
    claims += sampler_claims

    finding = "Conditional Palette beats an unconditional model used by imputation (Section 5)"
    unconditional_claims = []
    for name, settings in experiments.items():
        if settings.get("role") != "unconditional_imputation":
            continue
        for task in settings["evaluate_on"]:
            palette = find.find("Palette", "task_model", task, TASK_TRAINING.get(task))
            unconditional = find.find("unconditional", "unconditional_imputation", task)
            unconditional_claims.append(Claim(finding, f"{task}: Palette has lower FID than unconditional imputation", "fid", "better", palette, unconditional, "qualitative"))
    if not unconditional_claims:
        absent = "no experiment with role 'unconditional_imputation' in this configuration"
        unconditional_claims.append(Claim(finding, "Palette has lower FID than unconditional imputation", "fid", "better", Side("Palette", missing=absent),
                                          Side("unconditional", missing=absent), "qualitative"))
    return claims + unconditional_claims


def reproduction_verdicts(experiments: dict, runs, metric_paths, samplers: dict, results_dir, *, seed: int = SEED, samples: int = BOOTSTRAP_SAMPLES,
                          fid_samples: int = FID_BOOTSTRAP_SAMPLES) -> dict:
    """The section's context: rows grouped by finding, a count per verdict, and the method's settings."""
    statistics = Statistics()
    groups: dict[str, list] = {}
    for claim in paper_claims(experiments, runs, metric_paths, samplers, results_dir):
        groups.setdefault(claim.finding, []).append(evaluate_claim(claim, statistics, seed, samples, fid_samples))
    rows = [row for group in groups.values() for row in group]
    counts = {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in ("holds", "contradicted", "inconclusive")}
    return {
        "findings": [{"finding": finding, "rows": group} for finding, group in groups.items()],
        "counts": counts,
        "method": {"confidence": CONFIDENCE, "samples": samples, "fid_samples": fid_samples, "min_images": MIN_IMAGES, "margin": CLOSE_MARGIN, "seed": seed},
    }
