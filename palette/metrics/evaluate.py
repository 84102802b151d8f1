"""Evaluate a folder of outputs against a folder of ground truth: the paper's metrics in one call.

`evaluate_folders(gt_dir, sample_dir)` is what `palette eval` and the Snakemake workflow call.
`sample_dir` holds either the images themselves or `sample_K/` subfolders (architecture.md); with
subfolders, sample_0 is scored against the ground truth and diversity is measured across the
samples of each input (consecutive pairs sample_k vs sample_k+1). File names must correspond.

One pass: images are read in chunks of `batch_size`, each file decoded once, and every metric
is fed from that decode (Inception features, classifier, PSNR/SSIM, diversity); only per-image
numbers are kept, so memory stays flat in the number of images (pool3 features are 8 KB each).

Output keys (absent metrics are simply not requested):
  n_images, num_samples         evaluation images, samples per image
  fid, fid_reference            FID of sample_0; fid_reference = {name, path, count,
                                files_digest, weights_digest} of the statistics it is against
                                (the ground-truth folder itself only when no reference is given)
  is, is_std | is_unavailable   Inception Score, or why it could not be computed
  pd                            mean L2 distance of Inception pool3 features, output vs GT
  ca_top1, ca_top1_ground_truth the paper's CA: ResNet-50 top-1 against the true labels
  classifier_top1(_ground_truth)  top-1 against labels of another classifier (not the paper's CA)
  classifier_agreement          without labels: share of outputs classified like their GT
  ca_classifier, classifier_measure  which classifier, and what its number is called
  psnr, ssim                    mean over images, output vs GT (psnr over non-identical
                                images; psnr_identical_images counts the others)
  lpips_diversity, ms_ssim_diversity (+ ms_ssim_scales)   across samples of one input,
                                or diversity_unavailable with one sample per input
  noise_ratio                   residual sampling noise: high-frequency energy of sample_0 over
                                that of the ground truth (image_quality.high_frequency_ratio),
                                over the generated pixels when `mask_dir` is given; ~1 is clean
Per-image values (docs/architecture.md, "per-image metrics"): `per_image_path` writes them as
an .npz, one row per image in `names` order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from palette.files import atomic_write
from palette.metrics.fid import (FeatureStatistics, StreamingStatistics, covariance_factor, folder_statistics,
                                 frechet_distance, list_images)
from palette.imageio import numbered_sample_folders, read_rgb

ALL_METRICS = ("fid", "is", "pd", "ca", "psnr", "ssim", "lpips", "ms_ssim", "noise")
DEFAULT_METRICS = ALL_METRICS
CLASSIFIER_TITLES = {"resnet50": "ResNet-50", "efficientnet_lite0": "EfficientNet-Lite0"}


class FileMismatchError(ValueError):
    """Ground-truth and sample folders do not hold the same image names."""


def sample_folders(sample_dir: str | os.PathLike) -> list[Path]:
    """`sample_K` subfolders in K order, or the folder itself when it has none."""
    sample_dir = Path(sample_dir)
    if not sample_dir.is_dir():
        raise FileNotFoundError(f"sample folder {sample_dir} does not exist")
    return numbered_sample_folders(sample_dir) or [sample_dir]


def matched_files(gt_dir: Path, folder: Path) -> tuple[list[Path], list[Path]]:
    """Pair images by name (stem, so .png outputs match .jpg ground truth); error on mismatches."""
    gt = {p.stem: p for p in list_images(gt_dir)}
    out = {p.stem: p for p in list_images(folder)}
    only_gt, only_out = sorted(set(gt) - set(out)), sorted(set(out) - set(gt))
    if only_gt or only_out:
        def show(names):
            return ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
        lines = [f"file names of {folder} do not correspond to {gt_dir}:"]
        if only_gt:
            lines.append(f"  only in ground truth: {show(only_gt)}")
        if only_out:
            lines.append(f"  only in samples: {show(only_out)}")
        raise FileMismatchError("\n".join(lines))
    if not gt:
        raise FileMismatchError(f"no images in {gt_dir}")
    names = sorted(gt)
    return [gt[n] for n in names], [out[n] for n in names]


def _parse_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    aliases = {"diversity": ["lpips", "ms_ssim"], "all": list(ALL_METRICS)}
    chosen: list[str] = []
    for metric in metrics:
        for name in aliases.get(metric.lower(), [metric.lower()]):
            if name not in ALL_METRICS:
                raise ValueError(f"unknown metric {name!r}; choose from {', '.join(ALL_METRICS)}, diversity, all")
            if name not in chosen:
                chosen.append(name)
    return chosen


def _reference_statistics(reference, cache_dir, model, device, batch_size, progress):
    """(statistics, fid_reference record) of an .npz of statistics or a folder of images."""
    from palette.metrics.reference import describe_statistics, files_digest, inception_weights_digest

    path = Path(reference)
    if path.is_dir():
        stats = folder_statistics(path, model, cache_dir, device, batch_size, progress)
        stats.name, stats.files_digest = f"images in {path}", files_digest(list_images(path))
        stats.weights_digest = inception_weights_digest()
    elif path.is_file():
        from palette.metrics.inception import FEATURE_DIM

        stats = FeatureStatistics.load(path, FEATURE_DIM)  # checked: one line naming a damaged file
        if stats.weights_digest and stats.weights_digest != inception_weights_digest():
            raise ValueError(f"{path}: reference statistics were made with other Inception weights "
                             f"({stats.weights_digest}); recompute them")
        stats.name = stats.name or path.stem
    else:
        raise FileNotFoundError(f"FID reference {path} is neither a statistics .npz nor a folder")
    return stats, describe_statistics(stats, path)


def _classifier_results(name: str, labelled: bool) -> tuple[str, str]:
    """(JSON key prefix, human name) of the classifier number: only ResNet-50 against the true
    labels is the paper's CA; anything else is reported under its own name."""
    title = CLASSIFIER_TITLES.get(name, name)
    if labelled and name == "resnet50":
        return "ca_top1", "CA (ResNet-50 top-1 against the true labels)"
    if labelled:
        return "classifier_top1", f"classifier top-1 against labels ({title}; not the paper's ResNet-50 CA)"
    return "classifier_agreement", f"classifier agreement ({title}): output classified like its ground truth"


@dataclass
class _Evaluation:
    """One evaluation between its steps: the matched files, the models the chosen metrics need
    (loaded once), and the per-image arrays the pass over the images fills in (None when the
    metric was not chosen)."""

    chosen: list[str]
    gt_dir: Path
    folders: list[Path]  # sample_K folders, or the sample folder itself
    gt_paths: list[Path]
    sample_paths: list[list[Path]]  # one list per folder, in gt_paths order; [0] is scored against the GT
    mask_dir: Path | None
    inception: object = None
    reference: FeatureStatistics | None = None  # FID reference given by the caller
    gt_stats: StreamingStatistics | None = None  # FID reference streamed from the ground truth instead
    need_gt_features: bool = False
    classifier_model: object = None
    truth: np.ndarray | None = None  # class labels of the ground truth, when given
    lpips_model: object = None
    diversity: list[str] = field(default_factory=list)
    quality: list[str] = field(default_factory=list)
    out_features: np.ndarray | None = None
    pd_values: np.ndarray | None = None
    predictions: np.ndarray | None = None
    gt_predictions: np.ndarray | None = None
    quality_values: dict | None = None
    noise_energy: dict | None = None
    lpips_values: np.ndarray | None = None
    ms_ssim_values: np.ndarray | None = None
    scales_used: set = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.gt_paths)

    @property
    def out_paths(self) -> list[Path]:
        return self.sample_paths[0]


def evaluate_folders(
    gt_dir: str | os.PathLike,
    sample_dir: str | os.PathLike,
    metrics: str | Iterable[str] | None = None,
    device: str | None = None,
    reference_stats: str | os.PathLike | None = None,
    labels: str | os.PathLike | dict | None = None,
    classifier: str = "auto",
    weights_dir: str | os.PathLike | None = None,
    weight_paths: dict[str, str | os.PathLike] | None = None,
    stats_cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
    per_image_path: str | os.PathLike | None = None,
    mask_dir: str | os.PathLike | None = None,
) -> dict:
    """Compute the requested metrics (default: all) of `sample_dir` against `gt_dir`.

    reference_stats: the FID reference, an .npz of statistics (`FeatureStatistics`, as the
    workflow's `results/reference/NAME.npz`) or a folder of reference images whose statistics
    are computed once and cached in `stats_cache_dir` (default: next to the weights,
    `<weights dir>/../fid_stats`). Without it, FID is against the ground-truth folder, which is
    not the paper's protocol (docs/paper.md) and is named so in `fid_reference`.
    labels: a labels file (`palette.metrics.reference.read_imagenet_validation_labels` formats)
    or a dict of ImageNet class indices by image name or stem; enables top-1 against labels.
    weight_paths: explicit weight files by name (keys of `palette.weights.WEIGHTS`, e.g. from the
    workflow config); they take precedence over the resources folder and pip packages.
    per_image_path: where to write the per-image values (.npz), or None.
    mask_dir: the evaluation set's masks (NAME.png, white = generated): the noise ratio then
    covers the generated pixels only, where a masked task's noise is (the rest is the input's).

    Steps: match the files, load the models, one pass over the images for the per-image numbers,
    then the set metrics from those numbers, then the per-image file.
    """
    from palette.weights import WEIGHTS, weights_dir as resolve_weights_dir

    chosen = _parse_metrics(metrics)
    paths = dict(weight_paths or {})
    unknown = sorted(set(paths) - set(WEIGHTS))
    if unknown:
        raise ValueError(f"unknown weight names {unknown}; known: {', '.join(WEIGHTS)}")
    run = _match_files(gt_dir, sample_dir, chosen, mask_dir)
    results: dict = {"n_images": run.count, "num_samples": len(run.folders),
                     "ground_truth": str(run.gt_dir), "samples": [str(f) for f in run.folders]}
    if stats_cache_dir is None:
        stats_cache_dir = resolve_weights_dir(weights_dir).parent / "fid_stats"
    _load_models(run, results, device, paths, weights_dir, reference_stats, stats_cache_dir, labels, classifier,
                 batch_size, progress)
    _score_images(run, batch_size, progress)
    per_image: dict = {"names": np.array([p.stem for p in run.gt_paths])}
    _feature_set_metrics(run, results, per_image, paths, weights_dir)
    _image_set_metrics(run, results, per_image)
    if per_image_path is not None:
        write_per_image(per_image_path, per_image)
    return results


def _match_files(gt_dir, sample_dir, chosen: list[str], mask_dir) -> _Evaluation:
    """Read step: the sample folders and, for each, its files paired by name with the ground truth."""
    gt_dir = Path(gt_dir)
    folders = sample_folders(sample_dir)
    gt_paths, out_paths = matched_files(gt_dir, folders[0])
    sample_paths = [out_paths] + [matched_files(gt_dir, folder)[1] for folder in folders[1:]]
    return _Evaluation(chosen, gt_dir, folders, gt_paths, sample_paths, Path(mask_dir) if mask_dir else None)


def _load_models(run: _Evaluation, results: dict, device, paths: dict, weights_dir, reference_stats,
                 stats_cache_dir, labels, classifier: str, batch_size: int, progress: bool) -> None:
    """Load each model the chosen metrics need, once, and make the per-image arrays the pass fills.
    A given FID reference is read (or computed from its folder) here, so its record leads `results`."""
    chosen, count = run.chosen, run.count
    if "fid" in chosen and reference_stats is not None and not Path(reference_stats).is_dir():
        # a statistics file needs no model: checked before any loads, a damaged one costs nothing
        run.reference, results["fid_reference"] = _reference_statistics(reference_stats, stats_cache_dir, None,
                                                                        device, batch_size, progress)
    if {"fid", "is", "pd"} & set(chosen):
        from palette.metrics.inception import FEATURE_DIM, load_inception

        run.inception = load_inception(device, paths.get("inception_fid"), weights_dir)
        run.out_features = np.zeros((count, FEATURE_DIM), np.float32)
    if "fid" in chosen and reference_stats is not None and run.reference is None:  # a folder of reference images
        run.reference, results["fid_reference"] = _reference_statistics(reference_stats, stats_cache_dir, run.inception,
                                                                        device, batch_size, progress)
    run.need_gt_features = "pd" in chosen or ("fid" in chosen and run.reference is None)
    run.gt_stats = StreamingStatistics() if "fid" in chosen and run.reference is None else None
    if "ca" in chosen:
        from palette.metrics.classifier import labels_for, load_classifier

        classifier_path = paths.get(classifier) if classifier != "auto" else paths.get("resnet50")
        run.classifier_model = load_classifier(classifier, device, classifier_path, weights_dir)
        if labels is not None:
            if isinstance(labels, dict):
                label_map = labels
            else:
                from palette.reference_sets import read_imagenet_validation_labels

                label_map = read_imagenet_validation_labels(labels, expected=0)
            run.truth = labels_for(run.gt_paths, label_map)
        run.predictions, run.gt_predictions = np.zeros(count, np.int64), np.zeros(count, np.int64)
    run.diversity = [m for m in ("lpips", "ms_ssim") if m in chosen]
    if run.diversity and len(run.folders) < 2:
        results["diversity_unavailable"] = "diversity needs at least two sample_K folders"
        run.diversity = []
    if run.diversity:
        if "lpips" in chosen:
            from palette.metrics.lpips_metric import load_lpips

            run.lpips_model = load_lpips(device, paths.get("lpips_alexnet_backbone"),
                                         paths.get("lpips_alexnet_linear"), weights_dir)
        run.lpips_values = np.zeros((count, len(run.folders) - 1))
        run.ms_ssim_values = np.zeros((count, len(run.folders) - 1))
    run.quality = [m for m in ("psnr", "ssim") if m in chosen]
    if run.quality:
        run.quality_values = {m: np.zeros(count) for m in run.quality}
    if "pd" in chosen:
        run.pd_values = np.zeros(count)
    if "noise" in chosen:
        run.noise_energy = {"sample": np.zeros(count), "target": np.zeros(count)}


def _score_images(run: _Evaluation, batch_size: int, progress: bool) -> None:
    """The one pass: images read in chunks of `batch_size`, each file decoded once, and every
    per-image number (features, predictions, PSNR/SSIM, noise energy, diversity) taken from it."""
    reads_gt = run.need_gt_features or run.classifier_model is not None or run.quality or run.noise_energy is not None
    same_files = run.gt_paths == run.out_paths  # ground truth scored against itself (the paper's GT rows)
    with tqdm(total=run.count, desc=f"evaluate {run.folders[0].name}", unit="img", disable=not progress) as bar:
        for start in range(0, run.count, batch_size):
            stop = min(start + batch_size, run.count)
            outputs = [read_rgb(p) for p in run.out_paths[start:stop]]
            truths = (outputs if same_files else [read_rgb(p) for p in run.gt_paths[start:stop]]) if reads_gt else None
            _batch_features(run, start, stop, outputs, truths, same_files, batch_size)
            _batch_image_metrics(run, start, stop, outputs, truths)
            bar.update(stop - start)


def _batch_features(run: _Evaluation, start: int, stop: int, outputs: list, truths: list | None, same_files: bool,
                    batch_size: int) -> None:
    """Inception features (and the distance of each output's to its ground truth's) and class
    predictions of one batch."""
    if run.inception is not None:
        import torch

        from palette.metrics.inception import preprocess_batch

        inception_device = next(run.inception.parameters()).device
        with torch.no_grad():
            batch = preprocess_batch(outputs).to(inception_device)
            run.out_features[start:stop] = run.inception(batch).float().cpu().numpy()
            if run.need_gt_features:
                gt_features = run.out_features[start:stop] if same_files else \
                    run.inception(preprocess_batch(truths).to(inception_device)).float().cpu().numpy()
        if run.gt_stats is not None:
            run.gt_stats.update(gt_features)
        if run.pd_values is not None:
            run.pd_values[start:stop] = np.linalg.norm(run.out_features[start:stop].astype(np.float64)
                                                       - gt_features.astype(np.float64), axis=1)
    if run.classifier_model is not None:
        run.predictions[start:stop] = run.classifier_model.predict_arrays(outputs, batch_size, progress=False)
        run.gt_predictions[start:stop] = (run.predictions[start:stop] if same_files else
                                          run.classifier_model.predict_arrays(truths, batch_size, progress=False))


def _batch_image_metrics(run: _Evaluation, start: int, stop: int, outputs: list, truths: list | None) -> None:
    """PSNR/SSIM against the ground truth, high-frequency energy, and diversity across the
    samples of each input, for one batch (the other samples are read here, once each)."""
    if run.quality:
        from palette.metrics.image_quality import psnr, ssim

        for offset, (reference_image, output) in enumerate(zip(truths, outputs)):
            if reference_image.shape != output.shape:
                raise ValueError(f"{run.out_paths[start + offset].name}: size {output.shape} differs from "
                                 f"ground truth {reference_image.shape}")
            if "psnr" in run.quality:
                run.quality_values["psnr"][start + offset] = psnr(reference_image, output)
            if "ssim" in run.quality:
                run.quality_values["ssim"][start + offset] = ssim(reference_image, output)
    if run.noise_energy is not None:
        from palette.imageio import load_mask
        from palette.metrics.image_quality import high_frequency_energy

        for offset, (reference_image, output) in enumerate(zip(truths, outputs)):
            name = run.gt_paths[start + offset].stem
            weights = load_mask(run.mask_dir / f"{name}.png").astype(np.float64) if run.mask_dir else None
            run.noise_energy["sample"][start + offset] = high_frequency_energy(output, weights)
            run.noise_energy["target"][start + offset] = high_frequency_energy(reference_image, weights)
    if run.diversity:
        from palette.metrics.image_quality import ms_ssim
        from palette.metrics.lpips_metric import lpips_distance, uint8_to_tensor

        samples = [outputs] + [[read_rgb(p) for p in folder_paths[start:stop]] for folder_paths in run.sample_paths[1:]]
        for k in range(len(run.folders) - 1):
            if run.lpips_model is not None:
                run.lpips_values[start:stop, k] = lpips_distance(run.lpips_model, uint8_to_tensor(samples[k]),
                                                                 uint8_to_tensor(samples[k + 1])).numpy()
            if "ms_ssim" in run.chosen:
                for offset, (first, second) in enumerate(zip(samples[k], samples[k + 1])):
                    value, scales = ms_ssim(first, second)
                    run.ms_ssim_values[start + offset, k] = value
                    run.scales_used.add(scales)


def _feature_set_metrics(run: _Evaluation, results: dict, per_image: dict, paths: dict, weights_dir) -> None:
    """The set metrics of the Inception features and the classifier: FID, PD, IS, CA."""
    if run.inception is not None:
        per_image["pool3"] = run.out_features
    if "fid" in run.chosen:
        reference = run.reference
        if reference is None:
            from palette.metrics.reference import files_digest, inception_weights_digest

            reference = FeatureStatistics(*run.gt_stats.mean_and_covariance(), run.gt_stats.count)
            results["fid_reference"] = {"name": "ground truth (the evaluation targets themselves)",
                                        "path": str(run.gt_dir), "count": run.count,
                                        "files_digest": files_digest(run.gt_paths),
                                        "weights_digest": inception_weights_digest()}
        out_stats = FeatureStatistics.from_features(run.out_features)
        results["fid"] = frechet_distance(out_stats.mu, out_stats.sigma, reference.mu, reference.sigma,
                                          factor1=covariance_factor(run.out_features))
    if run.pd_values is not None:
        results["pd"] = float(run.pd_values.mean())
        per_image["perceptual_distance"] = run.pd_values
    if "is" in run.chosen:
        import torch

        from palette.metrics.inception_score import inception_logits, inception_score_from_logits, unavailable_reason
        from palette.weights import ChecksumMismatchError, WeightsNotFoundError

        try:
            logits = inception_logits(run.out_features, paths.get("inception_full"), weights_dir)
        except (WeightsNotFoundError, ChecksumMismatchError) as error:
            results.update({"is": None, "is_std": None, "is_unavailable": unavailable_reason(error)})
        else:
            results["is"], results["is_std"] = inception_score_from_logits(logits)
            per_image["inception_probabilities"] = torch.softmax(torch.from_numpy(logits), 1).float().numpy()
    if run.classifier_model is not None:
        key, measure = _classifier_results(run.classifier_model.name, run.truth is not None)
        results["ca_classifier"], results["classifier_measure"] = run.classifier_model.name, measure
        if run.truth is not None:
            correct = run.predictions == run.truth
            results[key] = float(correct.mean())
            results[f"{key}_ground_truth"] = float((run.gt_predictions == run.truth).mean())
            per_image["ca_correct" if key == "ca_top1" else "classifier_correct"] = correct
        else:
            agreement = run.predictions == run.gt_predictions
            results[key] = float(agreement.mean())
            per_image["classifier_agreement"] = agreement


def _image_set_metrics(run: _Evaluation, results: dict, per_image: dict) -> None:
    """The set metrics of the per-image numbers: PSNR, SSIM, diversity, noise ratio."""
    if "psnr" in run.quality:
        values = run.quality_values["psnr"]
        # identical images give inf; report the mean over finite values and count the rest
        finite = values[np.isfinite(values)]
        results["psnr"] = float(finite.mean()) if len(finite) else float("inf")
        if len(finite) < run.count:
            results["psnr_identical_images"] = int(run.count - len(finite))
        per_image["psnr"] = values
    if "ssim" in run.quality:
        results["ssim"] = float(run.quality_values["ssim"].mean())
        per_image["ssim"] = run.quality_values["ssim"]
    if run.lpips_model is not None:
        results["lpips_diversity"] = float(run.lpips_values.mean())
        per_image["lpips_diversity"] = run.lpips_values.mean(axis=1)
    if run.noise_energy is not None:
        target_energy = run.noise_energy["target"].sum()
        results["noise_ratio"] = float(run.noise_energy["sample"].sum() / target_energy) if target_energy > 0 else None
        per_image["noise_energy_sample"] = run.noise_energy["sample"]
        per_image["noise_energy_target"] = run.noise_energy["target"]
    if run.diversity and "ms_ssim" in run.chosen:
        results["ms_ssim_diversity"] = float(run.ms_ssim_values.mean())
        results["ms_ssim_scales"] = min(run.scales_used)


def write_per_image(path: str | os.PathLike, values: dict) -> Path:
    """The per-image .npz (keys: docs/architecture.md), written atomically."""
    with atomic_write(path) as handle:
        np.savez(handle, **values)
    return Path(path)
