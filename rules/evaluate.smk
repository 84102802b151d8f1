"""Evaluate: the paper's metrics for every experiment x task variant x sampler, then one table
per experiment (a row per task variant and sampler). The metric networks' weights are staged
first, once, by a local rule."""


rule stage_weights:
    """The metric networks' weights, staged once where the network is (a local rule: on a cluster
    it runs on the login node) and recorded in WEIGHTS_DIR/staged.json; compute jobs check the
    record and never download (palette.weights.stage / check_staged)."""
    output:
        STAGED_WEIGHTS,
    log:
        f"{RESULTS}/logs/reference/stage_weights.log",
    conda:
        "../envs/palette.yaml"
    params:
        names=weights_for(EVALUATION["metrics"]),
        weights_dir=lambda wildcards, output: str(Path(output[0]).parent),
    script:
        "../scripts/stage_weights.py"


rule evaluate:
    input:
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
        samples=f"{RESULTS}/samples/{{experiment}}/{{task}}/{{sampler}}",
        # FID reference statistics of the variant's subset, CA labels (rules/reference.smk), the staged weights
        reference=fid_reference_statistics,
        labels=evaluation_references()["labels"],
        weights=evaluation_references()["weights"],
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
        weights_dir=staged_weights_dir,
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
