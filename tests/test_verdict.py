"""The "Does it reproduce?" section: exact resampled FID, the bootstrap, verdicts, the rendered table."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from palette import verdict
from palette.verdict import (
    Claim,
    ReferenceStatistics,
    ResampledFid,
    ResampledInceptionScore,
    ResampledMean,
    Side,
    Statistics,
    bootstrap_difference,
    decide,
    evaluate_claim,
)


def random_reference(rng, dim):
    basis = rng.normal(size=(dim, min(dim, 128)))
    sigma = basis @ basis.T / basis.shape[1] + 0.05 * np.eye(dim)
    return ReferenceStatistics(rng.normal(size=dim) * 0.1, sigma)


def resample_weights(rng, n):
    return np.bincount(rng.integers(0, n, n), minlength=n)


@pytest.mark.parametrize("n", [12, 40, 300])  # Gram path (n <= dim) and the dim x dim path (n > dim)
def test_resampled_fid_equals_the_direct_formula(n):
    from palette.metrics.fid import frechet_distance

    rng = np.random.default_rng(n)
    dim = 256
    reference = random_reference(rng, dim)
    features = rng.normal(size=(n, dim)) + rng.normal(size=dim)
    fid = ResampledFid(features, reference)
    for weights in (None, resample_weights(rng, n), resample_weights(rng, n)):
        w = np.ones(n) if weights is None else weights
        mean = w @ features / n
        covariance = np.cov(features.T, fweights=w)
        direct = frechet_distance(mean, covariance, reference.mu, reference.sigma)
        assert fid(weights) == pytest.approx(direct, rel=1e-7, abs=1e-7)


def test_resampled_fid_at_2048_features_equals_the_2048_square_formula():
    """At Inception's width: the n x n Gram eigenproblem against tr sqrt(R Sigma R) on 2048 x 2048."""
    rng = np.random.default_rng(7)
    dim, n = 2048, 24
    reference = random_reference(rng, dim)
    features = np.abs(rng.normal(size=(n, dim))).astype(np.float32)
    weights = resample_weights(rng, n)
    x = features.astype(np.float64)
    mean = weights @ x / n
    covariance = np.cov(x.T, fweights=weights)
    root = reference.sqrt
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(root @ covariance @ root), 0, None)).sum()
    diff = mean - reference.mu
    direct = diff @ diff + np.trace(covariance) + np.trace(reference.sigma) - 2 * trace_sqrt
    # The 2048-square form's ~2000 zero eigenvalues come out as round-off (~1e-12) whose square
    # roots add ~1e-4 to its trace term; the Gram form has none of them.
    assert ResampledFid(features, reference)(weights) == pytest.approx(direct, rel=1e-6)


def test_inception_score_and_mean_of_weights():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(20), size=30)
    score = ResampledInceptionScore(p)
    marginal = p.mean(0)
    expected = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1)))
    assert score() == pytest.approx(expected)
    weights = resample_weights(rng, 30)
    repeated = np.repeat(p, weights, axis=0)
    expected = np.exp(np.mean(np.sum(repeated * (np.log(repeated) - np.log(repeated.mean(0))), axis=1)))
    assert score(weights) == pytest.approx(expected)
    values = rng.normal(size=30)
    assert ResampledMean(values)(weights) == pytest.approx(np.repeat(values, weights).mean())


def test_bootstrap_is_deterministic_under_a_seed():
    rng = np.random.default_rng(1)
    a, b = ResampledMean(rng.normal(size=50)), ResampledMean(rng.normal(size=50))
    first = bootstrap_difference(a, b, 50, 50, paired=True, samples=300, seed=11)
    assert first == bootstrap_difference(a, b, 50, 50, paired=True, samples=300, seed=11)
    assert first["lower"] != bootstrap_difference(a, b, 50, 50, paired=True, samples=300, seed=12)["lower"]
    assert first["lower"] < first["difference"] < first["upper"]
    assert first["a_lower"] < a() < first["a_upper"] and first["b_lower"] < b() < first["b_upper"]


def test_the_basic_interval_mirrors_the_resamples_about_the_value():
    """[2t - q_hi, 2t - q_lo]: a statistic whose resamples sit above its value (as FID's do) gets an
    interval reaching below it, where the percentile interval would lie wholly above."""
    rng = np.random.default_rng(2)
    values = rng.exponential(size=60)
    maximum = type("Maximum", (), {"n": 60, "__call__": lambda self, w=None: float(values.max() if w is None else values[np.asarray(w) > 0].max())})()
    basic = bootstrap_difference(maximum, verdict.Zero(), 60, 60, paired=True, samples=400, seed=3)
    percentile = bootstrap_difference(maximum, verdict.Zero(), 60, 60, paired=True, samples=400, seed=3, interval="percentile")
    assert percentile["upper"] == pytest.approx(values.max())  # resampled maxima never exceed the maximum
    assert basic["lower"] == pytest.approx(2 * values.max() - percentile["upper"]) and basic["upper"] >= values.max()
    with pytest.raises(ValueError, match="interval must be"):
        bootstrap_difference(maximum, verdict.Zero(), 60, 60, paired=True, samples=4, seed=3, interval="bca")
    centred = bootstrap_difference(maximum, verdict.Zero(), 60, 60, paired=True, samples=400, seed=3, interval="centred")
    assert (centred["lower"] + centred["upper"]) / 2 < values.max() < centred["upper"]  # the spread about the mean, moved onto the value


def test_decide():
    assert decide("better", 1, 0.5, 2.0)[0] == "holds"
    assert decide("better", 1, -2.0, -0.5)[0] == "contradicted"
    assert decide("better", -1, -2.0, -0.5)[0] == "holds"  # lower FID is better
    assert decide("better", -1, -0.5, 0.5) == ("inconclusive", "the interval contains zero")
    assert decide("close", -1, -3.0, 0.9, margin=1.0)[0] == "holds"
    assert decide("close", -1, 1.5, 3.0, margin=1.0)[0] == "contradicted"
    assert decide("close", -1, 0.5, 1.5, margin=1.0)[0] == "inconclusive"
    assert decide("close", 1, -0.9, 2.0, margin=1.0)[0] == "holds"  # higher is better: worse = negative
    assert decide("similar", -1, -0.5, 0.5, margin=1.0)[0] == "holds"
    assert decide("similar", -1, -3.0, -1.5, margin=1.0)[0] == "contradicted"
    assert decide("similar", -1, 0.5, 1.5, margin=1.0)[0] == "inconclusive"


def write_run(path: Path, names, reference=None, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"n_images": len(names)}
    if reference:
        values["fid_reference"] = {"name": Path(reference).stem, "path": str(reference), "count": 100}
    path.write_text(json.dumps(values))
    np.savez(path.with_suffix(".npz"), names=np.array(names), **arrays)
    return str(path)


def psnr_claim(tmp_path, a_values, b_values, names_b=None):
    names = [f"{i:04d}" for i in range(len(a_values))]
    a = write_run(tmp_path / "a.json", names, psnr=np.asarray(a_values, float))
    b = write_run(tmp_path / "b.json", names_b or names, psnr=np.asarray(b_values, float))
    claim = Claim("finding", "A has higher PSNR than B", "psnr", "better", Side("A", a), Side("B", b), "paper")
    return evaluate_claim(claim, Statistics())


def test_verdicts_on_synthetic_per_image_values(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.normal(25, 3, size=40)
    win = psnr_claim(tmp_path / "win", base + 2 + rng.normal(0, 0.5, 40), base)
    assert win["verdict"] == "holds" and win["lower"] > 0 and win["paired"]
    loss = psnr_claim(tmp_path / "loss", base - 2 + rng.normal(0, 0.5, 40), base)
    assert loss["verdict"] == "contradicted" and loss["upper"] < 0
    overlap = psnr_claim(tmp_path / "overlap", base + rng.normal(0, 2, 40), base)
    assert overlap["verdict"] == "inconclusive" and overlap["lower"] < 0 < overlap["upper"]
    few = psnr_claim(tmp_path / "few", base[:5] + 5, base[:5])
    assert few["verdict"] == "inconclusive" and few["reason"].startswith("too few images")
    # the same images in another order are re-aligned and still paired
    names = [f"{i:04d}" for i in range(40)]
    shuffled = psnr_claim(tmp_path / "shuffled", base + 2, base[::-1], names_b=names[::-1])
    assert shuffled["paired"] and shuffled["difference"] == pytest.approx(2.0)


def test_missing_file_or_key_reads_not_measured(tmp_path):
    names = [f"{i}" for i in range(20)]
    a = write_run(tmp_path / "a.json", names, psnr=np.ones(20))
    b = write_run(tmp_path / "b.json", names, psnr=np.ones(20))
    row = evaluate_claim(Claim("f", "t", "fid", "better", Side("A", a), Side("B", b), ""), Statistics())
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("not measured:") and "pool3" in row["reason"]
    row = evaluate_claim(Claim("f", "t", "psnr", "better", Side("A", str(tmp_path / "gone.json")), Side("B", b), ""), Statistics())
    assert row["reason"].startswith("not measured:") and "gone.json" in row["reason"]
    row = evaluate_claim(Claim("f", "t", "psnr", "better", Side("A", missing="no experiment"), Side("B", b), ""), Statistics())
    assert row["reason"] == "not measured: no experiment"


def synthetic_workflow(tmp_path, n=40, dim=16):
    """A colorization specialist beating its regression baseline, per-image files as the evaluate rule writes them."""
    rng = np.random.default_rng(5)
    results = tmp_path / "results"
    reference_path = results / "reference" / "demo.npz"
    reference_path.parent.mkdir(parents=True)
    reference_features = rng.normal(size=(200, dim))
    np.savez(reference_path, mu=reference_features.mean(0), sigma=np.cov(reference_features.T), count=200, files_digest="x", weights_digest="y", name="demo")
    names = [f"img{i:03d}" for i in range(n)]
    experiments = {
        "colorization": {"role": "task_model", "train": {"task": "colorization"}, "evaluate_on": ["colorization"]},
        "colorization_regression": {"role": "regression", "train": {"task": "colorization", "objective": "regression"}, "evaluate_on": ["colorization"]},
    }
    runs = [("colorization", "colorization", "ancestral_10"), ("colorization_regression", "colorization", "regression")]
    paths = []
    for (experiment, task, sampler), shift, psnr in zip(runs, (0.0, 2.0), (20.0, 24.0)):
        path = results / "metrics" / experiment / task / f"{sampler}.json"
        paths.append(write_run(path, names, reference_path, pool3=(rng.normal(size=(n, dim)) + shift).astype(np.float32),
                               psnr=psnr + rng.normal(0, 0.3, n), ssim=0.5 + rng.normal(0, 0.01, n)))
    samplers = {"ancestral_10": {"name": "ancestral", "steps": 10}, "regression": {"name": "regression", "steps": 1}}
    return experiments, runs, paths, samplers, results


def test_paper_claims_on_a_synthetic_workflow(tmp_path):
    experiments, runs, paths, samplers, results = synthetic_workflow(tmp_path)
    section = verdict.reproduction_verdicts(experiments, runs, paths, samplers, results)
    rows = {row["claim"]: row for finding in section["findings"] for row in finding["rows"]}
    own = {row["claim"]: row for finding in section["own_findings"] for row in finding["rows"]}
    assert rows["colorization: Palette has lower FID than regression"]["verdict"] == "holds"
    # pixel metrics are our finding, not the paper's: kept apart and out of its tally
    assert "colorization: regression has higher PSNR than Palette" not in rows
    assert own["colorization: regression has higher PSNR than Palette"]["verdict"] == "holds"
    assert own["colorization: regression has higher SSIM than Palette"]["verdict"] == "inconclusive"
    assert section["own_counts"]["holds"] >= 1 and all(row["source"] == "ours" for row in own.values())
    assert sum(section["counts"].values()) == len(rows)
    is_row = rows["colorization: Palette has higher IS than regression"]
    assert is_row["reason"].startswith("not measured:") and "inception_probabilities" in is_row["reason"]
    assert "not measured: no experiment with role 'task_model' trained on jpeg is evaluated on jpeg_q5" in rows["jpeg_q5: Palette has lower FID than regression"]["reason"]
    ground_truth = rows["colorization: Palette's FID is at most 10% above the ground truth's"]
    assert ground_truth["reason"].startswith("not measured:") and "ground_truth" in ground_truth["reason"]
    assert section["counts"]["holds"] >= 1


def test_each_row_names_the_departures_of_both_sides(tmp_path):
    experiments, runs, paths, samplers, results = synthetic_workflow(tmp_path)
    samplers["ancestral_10"]["noise_scale"] = 0.8
    train_configs = {"colorization": {"task": "colorization", "residual": True, "prediction": "v"},
                     "colorization_regression": {"task": "colorization", "objective": "regression"}}
    section = verdict.reproduction_verdicts(experiments, runs, paths, samplers, results, train_configs=train_configs)
    row = next(row for finding in section["findings"] for row in finding["rows"]
               if row["claim"] == "colorization: Palette has lower FID than regression")
    departures = " / ".join(row["departures_a"])
    assert "diffuses the target minus the source" in departures and "predicts v" in departures
    assert "fresh noise scaled by 0.8" in departures and "respaced ancestral sampling in 10 steps" in departures
    assert row["departures_b"] == []  # the regression baseline: no diffusion, no sampler


def number_run(tmp_path, name, values, evaluation_set="fid5k", reference="imagenet_val_fid5k_reference", reference_count=5000, **extra):
    path = tmp_path / f"{name}.json"
    names = [f"{i:05d}" for i in range(len(values))]
    write_run(path, names, perceptual_distance=np.asarray(values, float))
    record = {"n_images": len(values), "evaluation_set": {"name": evaluation_set, "count": len(values)},
              "fid_reference": {"name": reference, "count": reference_count, "path": "unused"}, **extra}
    path.write_text(json.dumps(record))
    return Side(name, str(path))


def test_a_number_is_reproduced_missed_or_not_comparable(tmp_path):
    """The paper's colorization PD (46.2, FID-5K protocol) against synthetic per-image distances."""
    from palette.verdict import number_verdict

    rng = np.random.default_rng(4)
    statistics = Statistics(samples=400)
    match = number_verdict(statistics, number_run(tmp_path, "match", rng.normal(46.0, 8.0, 5000)), "pd", 46.2, "fid5k")
    assert match["verdict"] == "reproduced" and match["lower"] < 46.0 < match["upper"]
    miss = number_verdict(statistics, number_run(tmp_path, "miss", rng.normal(60.0, 8.0, 5000)), "pd", 46.2, "fid5k")
    assert miss["verdict"] == "not reproduced" and "below our interval" in miss["reason"]
    other_set = number_run(tmp_path, "other_set", rng.normal(46.0, 8.0, 5000), evaluation_set="ctest10k")
    row = number_verdict(statistics, other_set, "pd", 46.2, "fid5k")
    assert row["verdict"] == "not comparable" and row["reason"] == "evaluated on ctest10k, the paper on fid5k"
    assert row["ours"] == pytest.approx(46.0, abs=0.5)  # our number is still shown
    few = number_verdict(statistics, number_run(tmp_path, "few", rng.normal(46.0, 8.0, 500)), "pd", 46.2, "fid5k")
    assert few["verdict"] == "not comparable" and few["reason"] == "500 images, the paper's 5,000"
    # FID-5K against the 50,000 (which hold the evaluated images) is not the paper's FID-5K
    from palette.verdict import PROTOCOLS, protocol_problem

    against_all = number_run(tmp_path, "against_all", np.ones(5000), reference="imagenet_val50k", reference_count=50000)
    assert protocol_problem(against_all, "fid", PROTOCOLS["fid5k"]) == (
        "FID against imagenet_val50k (50,000 images), the paper's against imagenet_val_fid5k_reference (5,000)")
    assert protocol_problem(against_all, "pd", PROTOCOLS["fid5k"]) is None  # PD needs no reference
    efficientnet = number_run(tmp_path, "efficientnet", np.ones(5000), ca_classifier="efficientnet_lite0")
    assert "the paper's by ResNet-50" in protocol_problem(efficientnet, "ca", PROTOCOLS["fid5k"])
    assert number_verdict(statistics, match_side := Side("absent", missing="no run"), "pd", 46.2, "fid5k")["verdict"] == "not measured"
    assert number_verdict(statistics, match_side, "pd", None, "fid5k") is None  # the paper gives no number


def test_only_the_paper_sampler_counts_as_the_thousand_step_one():
    from palette.verdict import is_thousand_step

    assert is_thousand_step({}) and is_thousand_step({"preset": "paper"})
    assert is_thousand_step({"name": "ancestral", "steps": 1000})
    assert not is_thousand_step({"preset": "fast"})  # DPM-Solver++ in 50 steps, without a name
    assert not is_thousand_step({"preset": "paper", "clip_x0": True})
    assert not is_thousand_step({"preset": "paper", "variance": "posterior"})
    assert not is_thousand_step({"preset": "paper", "noise_scale": 0.8})
    assert not is_thousand_step({"name": "ancestral", "steps": 250})


def test_report_section_renders_the_verdict_table(tmp_path):
    from palette.report import build_report

    experiments, runs, paths, samplers, results = synthetic_workflow(tmp_path, n=12, dim=64)
    curves = tmp_path / "curves.png"
    Image.new("RGB", (4, 4)).save(curves)
    (tmp_path / "benchmarks").mkdir()
    out = build_report(
        tmp_path / "report.html", title="t", dataset={"name": "demo", "kind": "demo_photos", "image_size": 32, "evaluation_images": 12},
        experiments={name: dict(settings, description="") for name, settings in experiments.items()}, runs=runs, samplers=samplers, sweep=None,
        metric_paths=paths, table_paths=[], training_log_paths=[], training_curves=curves, quality_vs_steps=None, results_dir=results,
        benchmarks_dir=tmp_path / "benchmarks", config_hash="abc",
    )
    html = out.read_text()
    assert 'id="reproduce"' in html and "Does it reproduce?" in html
    section = html.split('id="reproduce"')[1].split("<h2")[0]
    assert "<table" in section and "Palette has lower FID than regression" in section
    assert 'verdict-holds">holds<' in section and "not measured" in section and "95 %" in section


def test_closeness_of_small_sample_fid_is_inconclusive(tmp_path):
    """10 % of an FID over fewer images than the paper's is not the paper's margin: only comparable FIDs count."""
    rng = np.random.default_rng(9)
    dim, n = 16, 40
    reference_path = tmp_path / "reference.npz"
    reference_features = rng.normal(size=(400, dim))
    np.savez(reference_path, mu=reference_features.mean(0), sigma=np.cov(reference_features.T), count=400, name="ref")
    names = [f"{i}" for i in range(n)]
    features = rng.normal(size=(n, dim))
    rows = {}
    for comparable in (False, True):
        sides = []
        for label, shift in (("A", 0.0), ("B", 0.01)):
            path = write_run(tmp_path / f"{comparable}" / f"{label}.json", names, reference_path, pool3=features + shift)
            values = json.loads(Path(path).read_text())
            values["fid_comparable"] = comparable
            Path(path).write_text(json.dumps(values))
            sides.append(Side(label, path))
        rows[comparable] = evaluate_claim(Claim("f", "A close to B", "fid", "close", *sides, ""), Statistics())
    assert rows[False]["verdict"] == "inconclusive" and "below the paper's image count" in rows[False]["reason"]
    assert rows[True]["verdict"] == "holds"


def test_the_noise_check_reads_each_ratio_against_the_limit():
    from palette.report import NOISE_RATIO_LIMIT, noise_check

    runs = [("a", "colorization", "s"), ("b", "inpainting_center", "s"), ("c", "jpeg_q5", "s"), ("d", "jpeg_q5", "s")]
    metrics = {runs[0]: {"noise_ratio": 1.1, "n_images": 24.0, "num_samples": 2.0},
               runs[1]: {"noise_ratio": NOISE_RATIO_LIMIT + 0.01, "n_images": 24.0, "num_samples": 2.0},
               runs[2]: {"noise_ratio": 0.4, "n_images": 24.0, "num_samples": 1.0},
               runs[3]: {"psnr": 20.0}}  # no noise metric: no row
    rows = noise_check(runs, metrics)
    assert [(r["experiment"], r["status"]) for r in rows] == [("a", "clean"), ("b", "noisy"), ("c", "blurred")]
    assert rows[0]["images"] == 24.0 and rows[2]["samples"] == 1.0 and "residual noise" in rows[1]["verdict"]


def test_the_report_names_every_departure_from_the_paper_and_none_for_the_paper_settings():
    from palette.departures import departures_from_paper

    trains = {"paper_like": {"objective": "diffusion", "prediction": "eps", "residual": False},
              "older_config": {"objective": "diffusion"},  # keys left at their defaults
              "jpeg": {"objective": "diffusion", "prediction": "v", "residual": True},
              "baseline": {"objective": "regression", "prediction": "eps"}}
    samplers = {"paper_1000": {"name": "paper", "steps": 1000}, "preset_paper": {"preset": "paper"},
                "regression": {"name": "regression", "steps": 1},
                "fast": {"preset": "fast", "name": "ancestral", "steps": 100, "noise_scale": 0.8},
                "ddim": {"name": "ddim", "steps": 50}}
    rows = {(r["kind"], r["name"]): r["changes"] for r in departures_from_paper(trains, samplers)}
    assert set(rows) == {("experiment", "jpeg"), ("sampler", "fast"), ("sampler", "ddim")}
    assert any("predicts v" in c for c in rows["experiment", "jpeg"])
    assert any("residual: true" in c for c in rows["experiment", "jpeg"])
    fast = " | ".join(rows["sampler", "fast"])
    for words in ("100 steps", "posterior variance", "clipped", "training schedule", "scaled by 0.8"):
        assert words in fast
    assert rows["sampler", "ddim"] == ["DDIM (eta 0.0) sampling in 50 steps instead of Algorithm 2's 1000"]


def test_the_paper_sampler_settings_match_the_samplers_defaults():
    from palette.diffusion import SamplerConfig
    from palette.sampler_presets import PAPER_SAMPLER

    assert SamplerConfig().to_dict() == PAPER_SAMPLER


# ---------------------------------------------------------------------------------------------
# The bootstrap against answers known in advance, in both its branches


def _half_width_ratio(result, standard_error):
    """The interval's half width over 1.96 standard errors of the difference: about 1 when right."""
    return (result["upper"] - result["lower"]) / 2 / (1.959964 * standard_error)


def test_unpaired_bootstrap_finds_a_known_difference_between_independent_sets():
    """Two sets of different sizes from distributions whose means differ by 1: the unpaired branch
    (the only one that can run on 40 against 60 images) gives A - B, an interval that covers 1 and
    excludes 0, as wide as the difference's standard error says."""
    rng = np.random.default_rng(20)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.5, 60)
    result = bootstrap_difference(ResampledMean(a), ResampledMean(b), 40, 60, paired=False, samples=2000, seed=1)
    assert result["difference"] == pytest.approx(a.mean() - b.mean())
    assert 0 < result["lower"] < 1.0 < result["upper"]
    standard_error = np.sqrt(a.var(ddof=1) / 40 + b.var(ddof=1) / 60)
    assert 0.85 < _half_width_ratio(result, standard_error) < 1.1
    assert result["a_lower"] < a.mean() < result["a_upper"] and result["b_lower"] < b.mean() < result["b_upper"]
    # the same distribution on both sides: the interval covers 0
    same = bootstrap_difference(ResampledMean(rng.normal(0, 1, 40)), ResampledMean(rng.normal(0, 1, 60)), 40, 60,
                                paired=False, samples=2000, seed=2)
    assert same["lower"] < 0 < same["upper"]


def test_paired_and_unpaired_bootstrap_on_correlated_sides():
    """B is A plus 0.5 plus a little noise, image by image: paired resampling sees only the small
    spread of the per-image differences (a narrow interval about -0.5, excluding 0), unpaired
    resampling sees the images' large spread on each side independently (an interval covering 0).
    Resampling A and B jointly in the unpaired branch would make it as narrow as the paired one."""
    rng = np.random.default_rng(21)
    a = rng.normal(0.0, 3.0, 50)
    b = a + 0.5 + rng.normal(0.0, 0.1, 50)
    paired = bootstrap_difference(ResampledMean(a), ResampledMean(b), 50, 50, paired=True, samples=2000, seed=3)
    unpaired = bootstrap_difference(ResampledMean(a), ResampledMean(b), 50, 50, paired=False, samples=2000, seed=3)
    assert paired["difference"] == unpaired["difference"] == pytest.approx(-0.5, abs=0.05)
    assert paired["lower"] < -0.5 < paired["upper"] < 0
    assert 0.85 < _half_width_ratio(paired, np.std(a - b, ddof=1) / np.sqrt(50)) < 1.1
    assert unpaired["lower"] < 0 < unpaired["upper"]
    assert 0.85 < _half_width_ratio(unpaired, np.sqrt(a.var(ddof=1) / 50 + b.var(ddof=1) / 50)) < 1.1


@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_interval_covers_the_true_difference_about_95_percent_of_the_time(paired):
    """Over 100 independent data sets with a true A - B of 1, the 95 % interval covers 1 in about
    95 of them (the basic interval of a mean over 40 images covers a little less: measured 94 times
    paired, 93 unpaired)."""
    rng = np.random.default_rng(22 + paired)
    covered = 0
    for trial in range(100):
        if paired:
            a = rng.normal(0.0, 2.0, 40)
            b, n_b = a - 1.0 + rng.normal(0.0, 1.0, 40), 40
        else:
            a = rng.normal(1.0, 1.0, 40)
            b, n_b = rng.normal(0.0, 1.5, 60), 60
        result = bootstrap_difference(ResampledMean(a), ResampledMean(b), 40, n_b, paired=paired, samples=200,
                                      seed=trial)
        covered += result["lower"] <= 1.0 <= result["upper"]
    assert 85 <= covered <= 99, covered


def test_a_claim_on_different_images_is_resampled_unpaired(tmp_path):
    """Sides evaluated on different images (30 against 40) take the unpaired branch, say so, and
    still find a clear difference."""
    rng = np.random.default_rng(23)
    a_values, b_values = rng.normal(27, 1, 30), rng.normal(25, 1, 40)
    row = psnr_claim(tmp_path, a_values, b_values, names_b=[f"other{i:03d}" for i in range(40)])
    assert row["paired"] is False and "Unpaired resampling" in row["note"]
    assert (row["n_a"], row["n_b"]) == (30, 40)
    assert row["difference"] == pytest.approx(a_values.mean() - b_values.mean())
    assert row["verdict"] == "holds" and 0 < row["lower"] < 2.0 < row["upper"]
