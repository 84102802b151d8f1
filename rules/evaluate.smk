"""Evaluate: the paper's metrics for every experiment x task variant x sampler, then one table
per experiment (a row per task variant and sampler)."""


rule evaluate:
    input:
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
        samples=f"{RESULTS}/samples/{{experiment}}/{{task}}/{{sampler}}",
        # FID reference statistics and CA labels (rules/reference.smk)
        reference=evaluation_references()["reference"],
        labels=evaluation_references()["labels"],
    output:
        json=f"{RESULTS}/metrics/{{experiment}}/{{task}}/{{sampler}}.json",
        per_image=f"{RESULTS}/metrics/{{experiment}}/{{task}}/{{sampler}}.npz",
    log:
        f"{RESULTS}/logs/evaluate/{{experiment}}/{{task}}/{{sampler}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{experiment}}/{{task}}/{{sampler}}.tsv"
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        metrics=EVALUATION["metrics"],
        subset=evaluation_subset_params,
        batch_size=EVALUATION["batch_size"],
        device=EVALUATION["device"],
        weights_dir=EVALUATION["weights_dir"],
    script:
        "../scripts/evaluate.py"


rule experiment_table:
    input:
        lambda wildcards: [
            f"{RESULTS}/metrics/{wildcards.experiment}/{task}/{sampler}.json"
            for experiment, task, sampler in evaluation_runs()
            if experiment == wildcards.experiment
        ],
    output:
        report(
            f"{RESULTS}/tables/{{experiment}}.tsv",
            caption="../report/experiment_table.rst",
            category="Tables",
            labels={"experiment": "{experiment}"},
        ),
    log:
        f"{RESULTS}/logs/tables/{{experiment}}.log",
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/experiment_table.py"
