"""Report: figures (also shown by `snakemake --report`, with captions) and the self-contained
results/report.html: the paper's tables with the paper's numbers beside ours, sample grids,
diversity strips, training curves, the quality-vs-steps sweep, the "Does it reproduce?" verdicts
and the run's metadata."""


# The curves of the models trained here (an external experiment has no training log).
rule plot_training_curves:
    input:
        expand(
            f"{RESULTS}/checkpoints/{{experiment}}.csv", experiment=TRAINED_EXPERIMENTS
        ),
    output:
        report(
            f"{RESULTS}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        f"{RESULTS}/logs/report/plot_training_curves.log",
    conda:
        "../envs/workflow.yaml"
    params:
        experiments=TRAINED_EXPERIMENTS,
    script:
        "../scripts/plot_training_curves.py"


rule plot_quality_vs_steps:
    input:
        sweep_metrics_files(),
    output:
        report(
            f"{RESULTS}/figures/quality_vs_steps.png",
            caption="../report/quality_vs_steps.rst",
            category="Samplers",
        ),
    log:
        f"{RESULTS}/logs/report/plot_quality_vs_steps.log",
    conda:
        "../envs/workflow.yaml"
    params:
        samplers=[] if not SAMPLING.get("sweep") else SAMPLING["sweep"]["samplers"],
        sampler_settings=canonical(SAMPLERS),
    script:
        "../scripts/plot_quality_vs_steps.py"


rule plot_samples:
    input:
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
        samples=lambda wildcards: f"{RESULTS}/samples/{wildcards.experiment}/{wildcards.task}/"
        + shown_sampler(wildcards.experiment, wildcards.task),
    output:
        grid=report(
            f"{RESULTS}/figures/samples/{{experiment}}/{{task}}.png",
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "task": "{task}", "figure": "grid"},
        ),
        diversity=report(
            f"{RESULTS}/figures/diversity/{{experiment}}/{{task}}.png",
            caption="../report/diversity.rst",
            category="Diversity",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "task": "{task}",
                "figure": "diversity",
            },
        ),
    log:
        f"{RESULTS}/logs/report/plot_samples/{{experiment}}/{{task}}.log",
    conda:
        "../envs/workflow.yaml"
    params:
        grid_images=config["report"]["grid_images"],
    script:
        "../scripts/plot_samples.py"


rule html_report:
    input:
        tables=table_files(),
        metrics=metrics_files(),
        # the paper's "ground truth" rows (rules/reference.smk)
        ground_truth=ground_truth_metrics_files(),
        training_logs=expand(
            f"{RESULTS}/checkpoints/{{experiment}}.csv", experiment=TRAINED_EXPERIMENTS
        ),
        # where each external experiment's model came from, and its departures (rules/train.smk)
        external=[
            f"{RESULTS}/checkpoints/{experiment}.external.json"
            for experiment in EXTERNAL_EXPERIMENTS
        ],
        training_curves=f"{RESULTS}/figures/training_curves.png",
        # each diffusion model's sampler, recorded beside its checkpoint (rules/train.smk)
        sampler_records=[
            f"{RESULTS}/checkpoints/{experiment}.sampler.yaml"
            for experiment in EXPERIMENTS
            if not is_regression(experiment)
        ],
        quality_vs_steps=(
            [f"{RESULTS}/figures/quality_vs_steps.png"]
            if SAMPLING.get("sweep")
            else []
        ),
        sample_figures=sample_figure_files(),
        per_image=lambda wildcards: per_image_files(),
        data_check=f"{RESULTS}/data/check.json",
        study=study_report_files(),
    output:
        report(
            f"{RESULTS}/report.html",
            caption="../report/report_html.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report/html_report.log",
    conda:
        "../envs/workflow.yaml"
    params:
        title=config["report"]["title"],
        dataset=canonical(DATASET),
        experiments=canonical(EXPERIMENTS),
        train_configs={name: train_config(name) for name in EXPERIMENTS},
        runs=[list(run) for run in evaluation_runs()],
        samplers={name: sampler_settings(name) for name in SAMPLERS},
        sweep=canonical(SAMPLING.get("sweep")),
        config_hash=config_hash(),
        results_dir=lambda wildcards, output: str(Path(output[0]).parent),
        benchmarks_dir=f"{RESULTS}/benchmarks",
        benchmarks=benchmark_files(),
        verdict_settings={
            "seed": config["seed"],
            "samples": config["report"]["bootstrap_samples"],
            "fid_samples": config["report"]["fid_bootstrap_samples"],
        },
        study=canonical(STUDY),
        plan_config=canonical(
            {
                k: config.get(k)
                for k in (
                    "dataset",
                    "experiments",
                    "train_defaults",
                    "training",
                    "samplers",
                    "sampling",
                    "evaluation",
                )
            }
        ),
    script:
        "../scripts/html_report.py"
