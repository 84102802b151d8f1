"""Snakemake entry point: the self-contained HTML report (results/report.html)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.report import build_report

build_report(
    snakemake.output[0],
    title=snakemake.params.title,
    dataset=dict(snakemake.params.dataset),
    experiments=dict(snakemake.params.experiments),
    runs=[tuple(run) for run in snakemake.params.runs],
    samplers=dict(snakemake.params.samplers),
    sweep=snakemake.params.sweep,
    metric_paths=list(snakemake.input.metrics),
    table_paths=list(snakemake.input.tables),
    training_log_paths=list(snakemake.input.training_logs),
    training_curves=snakemake.input.training_curves,
    quality_vs_steps=snakemake.input.quality_vs_steps[0] if snakemake.input.quality_vs_steps else None,
    results_dir=snakemake.params.results_dir,
    benchmarks_dir=snakemake.params.benchmarks_dir,
    benchmark_paths=list(snakemake.params.benchmarks),
    config_hash=snakemake.params.config_hash,
    verdict_settings=dict(snakemake.params.verdict_settings),
    data_check=snakemake.input.data_check,
    study_paths=list(snakemake.input.study),
    ground_truth_paths=list(snakemake.input.ground_truth),
    plan_config=dict(snakemake.params.plan_config),
    train_configs=dict(snakemake.params.train_configs),
    external_paths=list(snakemake.input.external),
)
