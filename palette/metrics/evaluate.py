"""Evaluate a folder of outputs against a folder of ground truth: the paper's metrics in one call.

`evaluate_folders(gt_dir, sample_dir)` is what `palette eval` and the Snakemake workflow call.
`sample_dir` holds either the images themselves or `sample_K/` subfolders (architecture.md); with
subfolders, sample_0 is scored against the ground truth and diversity is measured across the
samples of each input (consecutive pairs sample_k vs sample_k+1). File names must correspond.

Output keys (absent metrics are simply not requested):
  fid, fid_reference            FID of sample_0, against reference statistics or the GT folder
  is, is_std | is_unavailable   Inception Score, or why it could not be computed
  pd                            mean L2 distance of Inception pool3 features, output vs GT
  ca_top1, ca_top1_ground_truth top-1 against labels (when a labels file is given)
  ca_agreement_with_gt          without labels: share of outputs classified like their GT
  ca_classifier                 which classifier CA used
  psnr, ssim                    mean over images, output vs GT (psnr over non-identical
                                images; psnr_identical_images counts the others)
  lpips_diversity, ms_ssim_diversity (+ ms_ssim_scales)   across samples of one input,
                                or diversity_unavailable with one sample per input
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from palette.metrics.fid import FeatureStatistics, folder_statistics, frechet_distance, list_images
from palette.imageio import numbered_sample_folders, read_rgb

ALL_METRICS = ("fid", "is", "pd", "ca", "psnr", "ssim", "lpips", "ms_ssim")
DEFAULT_METRICS = ALL_METRICS


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
    path = Path(reference)
    if path.is_dir():
        return folder_statistics(path, model, cache_dir, device, batch_size, progress), f"reference images {path}"
    return FeatureStatistics.load(path), f"reference statistics {path}"


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
) -> dict:
    """Compute the requested metrics (default: all) of `sample_dir` against `gt_dir`.

    reference_stats: an .npz with `mu`/`sigma`, or a folder of reference images whose statistics
    are computed once and cached in `stats_cache_dir` (default: next to the weights,
    `<weights dir>/../fid_stats`). Without it, FID is against the ground-truth folder.
    labels: a CSV (`name,label`) or a dict of ImageNet class indices; enables `ca_top1`.
    weight_paths: explicit weight files by name (keys of `palette.weights.WEIGHTS`, e.g. from the
    workflow config); they take precedence over the resources folder and pip packages.
    """
    from palette.weights import weights_dir as resolve_weights_dir

    from palette.weights import WEIGHTS

    chosen = _parse_metrics(metrics)
    paths = dict(weight_paths or {})
    unknown = sorted(set(paths) - set(WEIGHTS))
    if unknown:
        raise ValueError(f"unknown weight names {unknown}; known: {', '.join(WEIGHTS)}")
    gt_dir = Path(gt_dir)
    folders = sample_folders(sample_dir)
    gt_paths, out_paths = matched_files(gt_dir, folders[0])
    sample_paths = [out_paths] + [matched_files(gt_dir, folder)[1] for folder in folders[1:]]
    results: dict = {"num_images": len(gt_paths), "num_samples": len(folders),
                     "ground_truth": str(gt_dir), "samples": [str(f) for f in folders]}
    if stats_cache_dir is None:
        stats_cache_dir = resolve_weights_dir(weights_dir).parent / "fid_stats"

    if {"fid", "is", "pd"} & set(chosen):
        from palette.metrics.inception import features_of_files, load_inception

        model = load_inception(device, paths.get("inception_fid"), weights_dir)
        out_features = features_of_files(model, out_paths, batch_size, f"inception {folders[0].name}", progress)
        gt_features = None
        if "pd" in chosen or ("fid" in chosen and reference_stats is None):
            gt_features = features_of_files(model, gt_paths, batch_size, f"inception {gt_dir.name}", progress)
        if "fid" in chosen:
            out_stats = FeatureStatistics.from_features(out_features)
            if reference_stats is not None:
                reference, described = _reference_statistics(reference_stats, stats_cache_dir, model, device,
                                                              batch_size, progress)
            else:
                reference, described = FeatureStatistics.from_features(gt_features), f"ground truth {gt_dir}"
            results["fid"] = frechet_distance(out_stats.mu, out_stats.sigma, reference.mu, reference.sigma)
            results["fid_reference"] = described
        if "pd" in chosen:
            distances = np.linalg.norm(out_features.astype(np.float64) - gt_features.astype(np.float64), axis=1)
            results["pd"] = float(distances.mean())
        if "is" in chosen:
            from palette.metrics.inception_score import inception_score

            results.update(inception_score(out_features, weights_path=paths.get("inception_full"),
                                           weights_dir=weights_dir))

    if "ca" in chosen:
        from palette.metrics.classifier import labels_for, load_classifier, read_labels, top1_accuracy

        classifier_path = paths.get(classifier) if classifier != "auto" else paths.get("resnet50")
        model = load_classifier(classifier, device, classifier_path, weights_dir)
        results["ca_classifier"] = model.name
        predictions = model.predict_files(out_paths, batch_size, f"classifier {folders[0].name}", progress)
        gt_predictions = model.predict_files(gt_paths, batch_size, f"classifier {gt_dir.name}", progress)
        if labels is not None:
            label_map = read_labels(labels) if not isinstance(labels, dict) else labels
            truth = labels_for(gt_paths, label_map)
            results["ca_top1"] = top1_accuracy(predictions, truth)
            results["ca_top1_ground_truth"] = top1_accuracy(gt_predictions, truth)
        else:
            results["ca_agreement_with_gt"] = top1_accuracy(predictions, gt_predictions)

    if {"psnr", "ssim"} & set(chosen):
        from palette.metrics.image_quality import psnr, ssim

        psnrs, ssims = [], []
        for gt_path, out_path in tqdm(list(zip(gt_paths, out_paths)), desc="PSNR/SSIM", unit="img",
                                      disable=not progress):
            reference, output = read_rgb(gt_path), read_rgb(out_path)
            if reference.shape != output.shape:
                raise ValueError(f"{out_path.name}: size {output.shape} differs from ground truth {reference.shape}")
            if "psnr" in chosen:
                psnrs.append(psnr(reference, output))
            if "ssim" in chosen:
                ssims.append(ssim(reference, output))
        if psnrs:
            # identical images give inf; report the mean over finite values and count the rest
            finite = [v for v in psnrs if np.isfinite(v)]
            results["psnr"] = float(np.mean(finite)) if finite else float("inf")
            if len(finite) < len(psnrs):
                results["psnr_identical_images"] = len(psnrs) - len(finite)
        if ssims:
            results["ssim"] = float(np.mean(ssims))

    diversity = [m for m in ("lpips", "ms_ssim") if m in chosen]
    if diversity and len(folders) < 2:
        results["diversity_unavailable"] = "diversity needs at least two sample_K folders"
    elif diversity:
        from palette.metrics.image_quality import ms_ssim
        from palette.metrics.lpips_metric import load_lpips, lpips_distance, uint8_to_tensor

        lpips_model = None
        if "lpips" in chosen:
            lpips_model = load_lpips(device, paths.get("lpips_alexnet_backbone"), paths.get("lpips_alexnet_linear"),
                                     weights_dir)
        lpips_values, ms_ssim_values, scales_used = [], [], set()
        pairs = [(k, index) for index in range(len(gt_paths)) for k in range(len(folders) - 1)]
        for k, index in tqdm(pairs, desc="diversity", unit="pair", disable=not progress):
            first, second = read_rgb(sample_paths[k][index]), read_rgb(sample_paths[k + 1][index])
            if lpips_model is not None:
                lpips_values.append(float(lpips_distance(lpips_model, uint8_to_tensor([first]),
                                                         uint8_to_tensor([second]))[0]))
            if "ms_ssim" in chosen:
                value, scales = ms_ssim(first, second)
                ms_ssim_values.append(value)
                scales_used.add(scales)
        if lpips_values:
            results["lpips_diversity"] = float(np.mean(lpips_values))
        if ms_ssim_values:
            results["ms_ssim_diversity"] = float(np.mean(ms_ssim_values))
            results["ms_ssim_scales"] = min(scales_used)
    return results
