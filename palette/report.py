"""The workflow's report: tables beside the paper's numbers, figures, and one self-contained HTML page.

The workflow's report rules call these functions:
- `experiment_table` gathers one experiment's metrics JSON files into a table (TSV);
- `plot_training_curves`, `plot_quality_vs_steps`, `plot_samples` draw the figures (PNG) that
  both `results/report.html` and `snakemake --report` show;
- `paper_tables` lines this run's numbers up with the paper's (docs/paper.md, "Target numbers");
- `palette.verdict` writes the "Does it reproduce?" section: the paper's findings as comparisons
  with bootstrap intervals and verdicts;
- `render_report` writes the HTML page from `templates/report.html.j2`, with every image
  embedded as a base64 data URI so that the file reads offline and can be mailed around.

Nothing here imports torch: the report jobs are light.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import math
import os
import platform
import subprocess
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from palette.imageio import numbered_sample_folders, read_rgb  # noqa: E402
from palette.departures import departures_from_paper  # noqa: E402
from palette.external import EXTERNAL_ROLE, external_label, load_records, reported_numbers  # noqa: E402
from palette.paper_numbers import GROUND_TRUTH, PAPER_TABLES, PaperRow, paper_numbers  # noqa: E402
from palette.tasks import COLORIZATION_CTEST10K, colorization_on_test_list  # noqa: E402
from palette.verdict import Side, Statistics, number_verdict, reproduction_verdicts  # noqa: E402

# The paper's headline metrics and the keys under which palette.metrics reports them.
PAPER_METRICS = {"FID": "fid", "IS": "is", "CA": "ca", "PD": "pd", "LPIPS diversity": "lpips_diversity"}
LOWER_IS_BETTER = {"fid", "pd"}


# ---------------------------------------------------------------------------------------------
# Metrics files and tables
# ---------------------------------------------------------------------------------------------


def flatten_metrics(values: dict, prefix: str = "") -> dict:
    """Numbers (and short strings) from a metrics JSON, nested keys joined with '.'."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = value
        elif isinstance(value, (int, float)):
            flat[name] = float(value)
        elif isinstance(value, str) and len(value) <= 200:
            flat[name] = value
    return flat


def metric_value(flat: dict, metric: str) -> float | None:
    """A headline metric from one run's metrics, in the paper's units (CA in percent).

    CA is only the paper's CA: ResNet-50 top-1 against the true labels (`ca_top1`). Another
    classifier's top-1, or the agreement with the classifier on the ground truth (no labels),
    is a different quantity: it stays under its own name (`classifier_measure`) and out of
    the paper's CA column; `ca_kind` says what was measured instead.
    """
    if metric == "ca":
        value = flat.get("ca_top1")
        if isinstance(value, float) and math.isfinite(value):
            return 100.0 * value if value <= 1.0 else value
        return None
    value = flat.get(metric)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def ca_kind(flat: dict) -> str | None:
    if "ca_top1" in flat:
        return "ResNet-50 top-1 accuracy against the true labels (the paper's CA)"
    for key in ("classifier_top1", "classifier_agreement"):
        if isinstance(flat.get(key), float):
            return (f"not the paper's CA: {flat.get('classifier_measure', key)} = {100 * flat[key]:.1f} % "
                    "(in the experiment table)")
    return None


def fid_note(flat: dict) -> str | None:
    """Image counts of an FID, and whether it compares with the paper's (FID is biased upward at
    small n: only an FID over the paper's number of images does)."""
    if not isinstance(flat.get("fid"), float):
        return None
    count = flat.get("n_images", flat.get("evaluation_set.count"))
    note = f"n={count:.0f}" if isinstance(count, float) else ""
    if flat.get("fid_comparable") is False:
        paper = flat.get("fid_paper_count")
        note += ", not comparable" + (f" (paper: {paper:.0f})" if isinstance(paper, float) else "")
    return note or None


def evaluation_summary(flats) -> str:
    """What our numbers in a table were computed on: evaluation sets and FID references."""
    sets, references = {}, {}
    for flat in flats:
        if isinstance(flat.get("evaluation_set.name"), str):
            sets[flat["evaluation_set.name"]] = flat.get("evaluation_set.count")
        if isinstance(flat.get("fid_reference.name"), str):
            references[flat["fid_reference.name"]] = flat.get("fid_reference.count")

    def show(found):
        return ", ".join(f"{name} ({count:.0f} images)" if isinstance(count, float) else name
                         for name, count in found.items())

    parts = [f"evaluated on {show(sets)}"] if sets else []
    if references:
        parts.append(f"FID against {show(references)}")
    return ("Ours: " + "; ".join(parts) + ".") if parts else ""


# The noise check (palette.metrics.image_quality.high_frequency_ratio): how far a sample's finest
# detail may exceed the ground truth's before the page calls it residual noise, and how far below
# it a sample counts as blurred.
NOISE_RATIO_LIMIT = 1.3
NOISE_RATIO_BLUR = 0.7


def noise_check(runs, metrics: dict) -> list[dict]:
    """One row per sampled run that measured `noise_ratio`: the ratio, its image and sample counts,
    and whether it is within NOISE_RATIO_LIMIT (above: speckle, or busier texture than the truth;
    below NOISE_RATIO_BLUR: smoother than the truth)."""
    rows = []
    for experiment, task, sampler in runs:
        flat = metrics.get((experiment, task, sampler), {})
        ratio = metric_value(flat, "noise_ratio")
        if ratio is None:
            continue
        if ratio > NOISE_RATIO_LIMIT:
            status, verdict = "noisy", f"above {NOISE_RATIO_LIMIT}: residual noise, or busier texture than the truth"
        elif ratio < NOISE_RATIO_BLUR:
            status, verdict = "blurred", f"below {NOISE_RATIO_BLUR}: smoother than the truth"
        else:
            status, verdict = "clean", f"within {NOISE_RATIO_LIMIT}"
        rows.append({"experiment": experiment, "task": task, "sampler": sampler, "ratio": ratio,
                     "images": flat.get("n_images"), "samples": flat.get("num_samples"),
                     "status": status, "verdict": verdict})
    return rows


def load_metrics(paths) -> list[dict]:
    return [flatten_metrics(json.loads(Path(path).read_text())) for path in paths]


def experiment_table(metric_paths) -> pd.DataFrame:
    """One row per task variant and sampler, one column per numeric metric."""
    rows = load_metrics(metric_paths)
    table = pd.DataFrame(rows)
    leading = [c for c in ("experiment", "task", "sampler") if c in table.columns]
    numeric = [c for c in table.columns if c not in leading and pd.api.types.is_numeric_dtype(table[c])]
    return table[leading + sorted(numeric)]


def _find_run(row: PaperRow, experiments: dict, shown_samplers: dict) -> tuple[str, str, str] | None:
    """(experiment, task, sampler) of ours that fills `row`, or None when the config has none.

    A task written "@role" means "the task variant the experiment with that role is evaluated
    on", so that a baseline row is scored on the same inputs as the ablation it is compared to.
    """
    task = row.task
    if task and task.startswith("@"):
        partner = _find_run(PaperRow("", {}, task[1:], row.train_task), experiments, shown_samplers)
        if partner is None:
            return None
        task = partner[1]
    roles = row.role if isinstance(row.role, tuple) else (row.role,)
    for role in roles:
        for name, settings in experiments.items():
            if settings.get("role", "task_model") != role or settings["train"]["task"] != row.train_task:
                continue
            candidate = task or settings["evaluate_on"][0]
            if candidate in settings["evaluate_on"] and (name, candidate) in shown_samplers:
                return name, candidate, shown_samplers[(name, candidate)]
    return None


def _find_ground_truth(row: PaperRow, ground_truth: dict) -> tuple[str, str, str] | None:
    from palette.tasks import EVALUATION_TASKS

    for task in EVALUATION_TASKS:
        if task.startswith(row.task) and task in ground_truth:
            return "ground truth", task, "none"
    return None


def numbers_reproduced(statistics: Statistics, runs, metric_paths, ground_truth_paths):
    """For paper_tables: (run, metric, paper value, protocol) -> palette.verdict.number_verdict's row."""
    paths = {tuple(run): str(path) for run, path in zip(runs, metric_paths)}
    paths.update({("ground truth", Path(path).stem, "none"): str(path) for path in ground_truth_paths})
    sides: dict[str, Side] = {}

    def number(run, metric, paper, protocol):
        path = paths.get(tuple(run))
        if path is None or paper is None:
            return None
        side = sides.setdefault(path, Side(" / ".join(run), path))
        return number_verdict(statistics, side, metric, paper, protocol)

    return number


def paper_tables(experiments: dict, metrics: dict, shown_samplers: dict, dataset_kind: str = "imagenet",
                 ground_truth: dict | None = None, number=None, externals: dict | None = None) -> list[dict]:
    """The paper's tables with our numbers beside the paper's.

    `metrics` maps (experiment, task, sampler) to flattened metrics; `shown_samplers` maps
    (experiment, task) to the sampler whose numbers stand for that pair; `ground_truth` maps a
    task variant to the flattened metrics of its evaluation targets (the paper's ground-truth
    rows). The paper's column holds its numbers for this run's data set (ImageNet for ImageNet
    and the demo).

    Below each of the paper's Palette rows (its specialist on a task variant), a row per model
    trained elsewhere (role external) with that task evaluated on that variant, labelled as
    palette.external does ("public reproduction (imported)"; `externals`: the records by name):
    the paper column is the paper's Palette number it is judged against, and each cell carries
    the number its own project reports (config `reported`), beside ours.
    """
    ground_truth = ground_truth or {}
    externals = externals or {}
    tables = []
    for table in PAPER_TABLES:
        rows = []
        source = "ImageNet"
        used = []
        for row in table.rows:
            if row.task == COLORIZATION_CTEST10K:  # the test list's colorization variant of this data set
                row = dataclasses.replace(row, task=colorization_on_test_list(dataset_kind))
            if row.role == GROUND_TRUTH:
                run = _find_ground_truth(row, ground_truth)
                ours = ground_truth.get(run[1], {}) if run else {}
            else:
                run = _find_run(row, experiments, shown_samplers) if row.role else None
                ours = metrics.get(run, {}) if run else {}
            used.append(ours)
            numbers, source = paper_numbers(table, row, dataset_kind)
            rows.append(
                {
                    "label": row.label,
                    "run": None if run is None else {"experiment": run[0], "task": run[1], "sampler": run[2]},
                    "paper_only": row.role is None,
                    "external": False,
                    "cells": _cells(table, numbers, run, ours, dataset_kind, number),
                }
            )
            if row.role != "task_model" or not row.task or row.task.startswith("@"):
                continue
            for name, settings in experiments.items():  # models trained elsewhere, beside the paper's Palette
                shown = shown_samplers.get((name, row.task))
                if settings.get("role") != EXTERNAL_ROLE or settings["train"]["task"] != row.train_task or not shown:
                    continue
                run = (name, row.task, shown)
                used.append(metrics.get(run, {}))
                rows.append({"label": f"{row.label}, {external_label(settings, externals.get(name))}",
                             "run": {"experiment": name, "task": row.task, "sampler": shown}, "paper_only": False, "external": True,
                             "cells": _cells(table, numbers, run, metrics.get(run, {}), dataset_kind, number,
                                             reported_numbers(settings, row.task))})
        note = " ".join(part for part in (table.note, evaluation_summary(used)) if part)
        tables.append({"title": table.title, "note": note, "paper_data": source, "metrics": [_metric_label(m) for m in table.metrics], "rows": rows})
    return tables


def _cells(table, numbers: dict, run, ours: dict, dataset_kind: str, number=None, reported: dict | None = None) -> list[dict]:
    """One table row's cells: per metric the paper's number, ours (with its image counts and, where
    `number` is given, whether the paper's is reproduced), and the number the model's own project
    reports (`reported`, for a model trained elsewhere)."""
    cells = []
    for metric in table.metrics:
        paper_value = numbers.get(metric)
        our_value = metric_value(ours, metric) if run else None
        cells.append({"paper": paper_value, "ours": our_value, "unavailable": _unavailable_reason(ours, metric) if run else None,
                      "note": fid_note(ours) if metric == "fid" and run else None,
                      "number": number(run, metric, paper_value, table.protocol(dataset_kind)) if number and run else None,
                      "reported": (reported or {}).get(metric)})
    return cells


def _metric_label(metric: str) -> str:
    labels = {value: key for key, value in PAPER_METRICS.items()}
    arrow = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    return labels.get(metric, metric) + arrow


def _unavailable_reason(flat: dict, metric: str) -> str | None:
    """Why a metric has no number (palette.metrics reports `is_unavailable`, `diversity_unavailable`)."""
    keys = [f"{metric}_unavailable"]
    if metric == "lpips_diversity":
        keys.append("diversity_unavailable")
    if metric == "ca":
        kind = ca_kind(flat)
        if kind:
            return kind
    for key in keys:
        if isinstance(flat.get(key), str):
            return flat[key]
    return None


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def read_training_log(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def plot_training_curves(csv_paths, names, out_path: str | Path) -> Path:
    """Loss against step for every experiment, on one log-scale panel, one colour each."""
    logs = [(name, read_training_log(path)) for name, path in zip(names, csv_paths)]
    fig, ax = plt.subplots(figsize=(9, 5))
    colours = plt.get_cmap("tab20").colors  # the default cycle repeats after 10 experiments
    for index, (name, log) in enumerate(logs):
        if {"step", "loss"} <= set(log.columns) and len(log):
            ax.plot(log["step"], log["loss"], label=name, linewidth=1.2, color=colours[index % len(colours)])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Training loss (log scale)")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def plot_quality_vs_steps(metric_paths, samplers, sampler_settings: dict, out_path: str | Path) -> Path:
    """Each headline metric against refinement steps, one line per sampler family."""
    points: dict[str, list] = {}
    loaded = dict(zip(samplers, load_metrics(metric_paths)))
    available = [m for m in ("fid", "pd", "lpips_diversity", "psnr", "ssim") if any(metric_value(v, m) is not None for v in loaded.values())]
    for name, flat in loaded.items():
        settings = sampler_settings[name]
        points.setdefault(settings["name"], []).append((settings.get("steps", 1000), name, flat))
    columns = min(3, max(1, len(available)))
    rows = max(1, math.ceil(len(available) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 3.6 * rows), squeeze=False)
    all_steps = sorted({steps for entries in points.values() for steps, _, _ in entries})
    for ax, metric in zip(axes.flat, available):
        for family, entries in sorted(points.items()):
            entries = sorted(entries, key=lambda entry: entry[0])
            xs = [steps for steps, _, flat in entries if metric_value(flat, metric) is not None]
            ys = [metric_value(flat, metric) for _, _, flat in entries if metric_value(flat, metric) is not None]
            ax.plot(xs, ys, marker="o", label=family)
        ax.set_xscale("log")
        ax.set_xticks(all_steps)
        ax.set_xticklabels([str(steps) for steps in all_steps])
        ax.minorticks_off()
        ax.set_xlabel("refinement steps")
        ax.set_ylabel(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(available):]:
        ax.axis("off")
    if not available:
        axes[0][0].text(0.5, 0.5, "no numeric metric in the sweep", ha="center", va="center")
    fig.suptitle("Quality against sampling steps")
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def _show_input(set_dir: Path, name: str) -> np.ndarray:
    """The model's input as a person should see it: masked pixels drawn in grey."""
    source = read_rgb(set_dir / "source" / f"{name}.png")
    mask_path = set_dir / "mask" / f"{name}.png"
    if mask_path.exists():
        with Image.open(mask_path) as mask_image:
            mask = np.asarray(mask_image.convert("L")) > 127
        source[mask] = 128
    return source


def plot_samples(set_dir, samples_dir, grid_path, diversity_path, grid_images: int = 4) -> tuple[Path, Path]:
    """Grid: one row per input (input | samples | ground truth); strip: one input, every sample."""
    set_dir, samples_dir = Path(set_dir), Path(samples_dir)
    names = sorted(p.stem for p in (set_dir / "target").glob("*.png"))[:grid_images]
    folders = numbered_sample_folders(samples_dir)
    columns = ["input"] + [f"sample {f.name.split('_')[1]}" for f in folders] + ["ground truth"]
    fig, axes = plt.subplots(len(names), len(columns), figsize=(1.6 * len(columns), 1.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        images = [_show_input(set_dir, name)] + [read_rgb(f / f"{name}.png") for f in folders] + [read_rgb(set_dir / "target" / f"{name}.png")]
        for col, image in enumerate(images):
            ax = axes[row][col]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=8)
    fig.tight_layout()
    grid_path = Path(grid_path)
    grid_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(grid_path, dpi=100)
    plt.close(fig)

    name = names[0]
    strip = [_show_input(set_dir, name)] + [read_rgb(f / f"{name}.png") for f in folders]
    fig, axes = plt.subplots(1, len(strip), figsize=(1.8 * len(strip), 2.0), squeeze=False)
    for col, image in enumerate(strip):
        ax = axes[0][col]
        ax.imshow(image, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("input" if col == 0 else f"sample {col - 1}", fontsize=8)
    fig.tight_layout()
    diversity_path = Path(diversity_path)
    diversity_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(diversity_path, dpi=100)
    plt.close(fig)
    return grid_path, diversity_path


# ---------------------------------------------------------------------------------------------
# Run metadata
# ---------------------------------------------------------------------------------------------


def git_commit(directory: str | Path = ".") -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=directory, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    if commit.returncode != 0:
        return "unknown (not a git checkout)"
    return commit.stdout.strip() + (" (working tree has uncommitted changes)" if dirty.stdout.strip() else "")


def hardware_summary() -> dict:
    info = {"machine": platform.machine(), "system": f"{platform.system()} {platform.release()}", "python": platform.python_version(), "cpus": os.cpu_count()}
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu"] = cpu_model or platform.processor() or "unknown"
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        gpus = [line.strip() for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    except (OSError, subprocess.TimeoutExpired):
        gpus = []
    info["gpus"] = gpus or ["none visible to the report job"]
    return info


def planned_against_measured(plan_config: dict, stages: list[dict]) -> list[dict]:
    """Per stage: what `palette plan` expects (images, FLOPs, H200-hours at its default MFU)
    beside the measured wall time, and the FLOP/s the stage achieved (planned FLOPs / wall)."""
    from palette.plan import DEFAULT_GPU, DEFAULT_MFU, gpu_hours, plan, stage_totals

    measured = {entry["stage"]: entry["seconds"] for entry in stages}
    try:
        planned = stage_totals(plan(plan_config))
    except ValueError:  # evaluation_images: null (the whole list): its size is known only to the data rules
        return []
    rows = []
    for stage, entry in planned.items():
        seconds = measured.get(stage)
        rows.append({"stage": stage, "images": entry["images"], "flops": entry["flops"] or None,
                     "gpu_hours": gpu_hours(entry["flops"], DEFAULT_GPU, DEFAULT_MFU) if entry["flops"] else None,
                     "seconds": seconds, "flops_per_s": entry["flops"] / seconds if entry["flops"] and seconds else None,
                     "assumption": f"{DEFAULT_GPU} at {DEFAULT_MFU:.0%} MFU"})
    return rows


def stage_wall_times(benchmarks_dir: str | Path, paths=None) -> list[dict]:
    """Wall and CPU time per stage from Snakemake's benchmark files (benchmarks/STAGE/...tsv).

    `paths` lists the files of this run's jobs (others in the folder may be left from an earlier
    configuration); missing ones are skipped. Without it, every file in the folder counts.
    """
    root = Path(benchmarks_dir)
    stages: dict[str, dict] = {}
    candidates = sorted(root.rglob("*.tsv")) if paths is None else [Path(p) for p in paths if Path(p).exists()]
    for path in candidates:
        stage = path.relative_to(root).parts[0]
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        seconds = float(rows[-1].get("s") or 0.0)
        entry = stages.setdefault(stage, {"stage": stage, "jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "longest": 0.0, "longest_job": ""})
        entry["jobs"] += 1
        entry["seconds"] += seconds
        entry["cpu_seconds"] += float(rows[-1].get("cpu_time") or 0.0)
        if seconds >= entry["longest"]:
            entry["longest"], entry["longest_job"] = seconds, str(path.relative_to(root).with_suffix(""))
    order = ["data", "degrade", "reference", "train", "sample", "evaluate"]
    return sorted(stages.values(), key=lambda e: (order.index(e["stage"]) if e["stage"] in order else len(order), e["stage"]))


def study_summary(paths) -> dict | None:
    """The human 2AFC study for the report: its settings (study.json) and, once answered, its
    fool rate (score.json, palette.study.score_study) beside the paper's; None without a study."""
    study_path = next((Path(p) for p in paths if Path(p).name == "study.json"), None)
    if study_path is None:
        return None
    study = json.loads(study_path.read_text())
    score_path = study_path.with_name("score.json")
    score = json.loads(score_path.read_text()) if score_path in [Path(p) for p in paths] else None
    return {"label": study.get("label", ""), "task": study.get("task", ""), "paper_fool_rate": study.get("paper_fool_rate"),
            "raters": len(study["raters"]), "trials_per_rater": study["trials_per_rater"],
            "catch_trials": study["catch_trials"], "folder": str(study_path.parent), "score": score}


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------


def data_uri(path: str | Path) -> str:
    path = Path(path)
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(out_path: str | Path, context: dict) -> Path:
    """Render templates/report.html.j2 with `context` into one self-contained HTML file."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("palette", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["number"] = format_number
    html = environment.get_template("report.html.j2").render(**context)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(html)
    return out_path


def format_number(value) -> str:
    """Short, honest numbers: 1 decimal from 100, 2 from 1, 3 below; trailing zeros dropped
    (so the paper's 5.1 prints as 5.1, not 5.10)."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    value = float(value)
    if not math.isfinite(value):
        return "–"
    magnitude = abs(value)
    decimals = 1 if magnitude >= 100 else 2 if magnitude >= 1 else 3
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def data_check_context(path: str | Path | None, listed: int = 10) -> dict | None:
    """The data check's section (rules/prepare.smk): its short table, the mode conversions and
    the first `listed` files of each finding; None without a check file."""
    if path is None or not Path(path).exists():
        return None
    from palette.datacheck import summary_table

    check = json.loads(Path(path).read_text())
    rows = summary_table(check)
    findings = [
        ("Unreadable or truncated (" + ("skipped" if check["on_bad_file"] == "skip" else "failing") + ")",
         [f"{item['path']} ({item['split']}): {item['error']}" for item in check["unreadable"]]),
        (f"Smaller than {check['image_size']} px (upscaled)",
         [f"{item['path']} ({item['split']}, {item['width']}x{item['height']})" for item in check["smaller"]]),
        ("Exact duplicates within a split",
         [", ".join(f["path"] for f in entry["files"]) for entry in check["duplicates_within_split"]]),
        ("Exact duplicates across splits (a leak)",
         [", ".join(f"{f['path']} ({f['split']})" for f in entry["files"]) for entry in check["duplicates_across_splits"]]),
    ]
    return {
        "image_size": check["image_size"],
        "on_bad_file": check["on_bad_file"],
        "columns": list(rows[0]) if rows else [],
        "rows": [list(row.values()) for row in rows],
        "conversions": check["conversions"],
        "findings": [{"title": title, "count": len(items), "items": items[:listed]} for title, items in findings if items],
    }


def build_report(
    out_path,
    *,
    title: str,
    dataset: dict,
    experiments: dict,
    runs: list,
    samplers: dict,
    sweep: dict | None,
    metric_paths: list,
    table_paths: list,
    training_log_paths: list,
    training_curves: str | Path,
    quality_vs_steps: str | Path | None,
    results_dir: str | Path,
    benchmarks_dir: str | Path,
    config_hash: str,
    benchmark_paths: list | None = None,
    verdict_settings: dict | None = None,
    data_check: str | Path | None = None,
    study_paths: list | None = None,
    ground_truth_paths: list | None = None,
    plan_config: dict | None = None,
    train_configs: dict | None = None,
    external_paths: list | None = None,
) -> Path:
    """Assemble everything the page shows and render it. `external_paths`: the records the
    import_checkpoint jobs wrote for the role-external experiments (palette.external)."""
    results_dir = Path(results_dir)
    externals = load_records(external_paths)
    kind = dataset.get("kind", "imagenet")
    metrics = {tuple(run): flat for run, flat in zip(runs, load_metrics(metric_paths))}
    statistics = Statistics(**(verdict_settings or {}))  # shared: a run's intervals are resampled once
    shown = {}
    for experiment, task, sampler in runs:
        shown.setdefault((experiment, task), sampler)
    per_experiment = []
    for name, settings in experiments.items():
        table_path = next((p for p in table_paths if Path(p).stem == name), None)
        table = pd.read_csv(table_path, sep="\t") if table_path else pd.DataFrame()
        figures = []
        for task in settings["evaluate_on"]:
            grid = results_dir / "figures" / "samples" / name / f"{task}.png"
            strip = results_dir / "figures" / "diversity" / name / f"{task}.png"
            figures.append({"task": task, "sampler": shown.get((name, task)), "grid": data_uri(grid) if grid.exists() else None, "diversity": data_uri(strip) if strip.exists() else None})
        log_path = next((p for p in training_log_paths if Path(p).stem == name), None)
        last = read_training_log(log_path).tail(1).to_dict("records") if log_path else []
        external = None
        if settings.get("role") == EXTERNAL_ROLE:  # not trained here: where its model came from instead
            record = externals.get(name, {})
            external = {"label": external_label(settings, record), "files": record.get("files") or {},
                        "departures": record.get("departures", []), "imported": record.get("imported") or {},
                        "reported": settings.get("reported") or {}, "reported_note": settings.get("reported_note") or ""}
        per_experiment.append(
            {
                "name": name,
                "role": settings.get("role", "task_model"),
                "description": settings.get("description", ""),
                "train": settings["train"],
                "columns": list(table.columns),
                "rows": [[format_number(v) if not isinstance(v, str) else v for v in row] for row in table.itertuples(index=False)],
                "figures": figures,
                "last_log": last[0] if last else {},
                "external": external,
            }
        )
    context = {
        "title": title,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": dataset,
        "paper_tables": paper_tables(experiments, metrics, shown, kind,
                                     {Path(p).stem: flat for p, flat in zip(ground_truth_paths or [],
                                                                            load_metrics(ground_truth_paths or []))},
                                     number=numbers_reproduced(statistics, runs, metric_paths, ground_truth_paths or []),
                                     externals=externals),
        "verdicts": reproduction_verdicts(experiments, runs, metric_paths, samplers, results_dir, **(verdict_settings or {}),
                                          dataset_kind=kind, train_configs=train_configs, statistics=statistics, externals=externals),
        "experiments": per_experiment,
        "noise_check": noise_check(runs, metrics),
        # an external model's departures are its record's (palette import names them), not its train settings'
        "departures": departures_from_paper({name: train for name, train in (train_configs or {}).items()
                                             if experiments.get(name, {}).get("role") != EXTERNAL_ROLE}, samplers)
        + [{"kind": external_label(experiments[name], record), "name": name, "changes": record["departures"]}
           for name, record in externals.items() if name in experiments and record.get("departures")],
        "has_external": any(settings.get("role") == EXTERNAL_ROLE for settings in experiments.values()),
        "noise_limit": NOISE_RATIO_LIMIT,
        "samplers": samplers,
        "sweep": sweep,
        "training_curves": data_uri(training_curves),
        "quality_vs_steps": data_uri(quality_vs_steps) if quality_vs_steps else None,
        "data_check": data_check_context(data_check),
        "study": study_summary(study_paths or []),
        "metadata": {
            "commit": git_commit(),
            "config_hash": config_hash,
            "hardware": hardware_summary(),
            "stages": stage_wall_times(benchmarks_dir, benchmark_paths),
        },
    }
    context["metadata"]["plan"] = planned_against_measured(plan_config, context["metadata"]["stages"]) if plan_config else []
    return render_report(out_path, context)
