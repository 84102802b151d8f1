"""Palette: Image-to-Image Diffusion Models (Saharia et al. 2022), reproduced as a DAG.

Stages, one rule file each, in the order of the paper's method section:
data (images and splits) -> prepare (data check, images preprocessed once) -> reference (FID
reference statistics, FID-5K, CA labels) -> degrade (fixed evaluation inputs per task variant) ->
train (one model per experiment) -> sample (experiment x task variant x sampler) -> evaluate
(metrics and one table per experiment) -> report (results/report.html).

    snakemake --cores 2                                   # the default demo (config.yaml)
    snakemake --cores 8 --resources gpu=4                 # local GPUs, one leased per job
    snakemake -n --configfile config/presets/imagenet.yaml
    snakemake --workflow-profile profiles/slurm --configfile config/presets/places2.yaml
"""

from palette.layering import layer_workflow_config

# config.yaml is the default run. Config files given with --configfile are layered over it one
# top-level key at a time (a block they give replaces config.yaml's, the others come from it; a data
# set of its own gets results/NAME and work/NAME), and --config values are merged key by key, read
# as YAML inside braces (palette.layering, docs/own-data.md). The presets give every key they use.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


layer_workflow_config(workflow, config)


include: "rules/common.smk"


wildcard_constraints:
    experiment="[A-Za-z0-9_]+",
    task="|".join(EVALUATION_TASKS),
    sampler="[A-Za-z0-9_]+",
    split="train|val|test",


include: "rules/data.smk"
include: "rules/prepare.smk"
include: "rules/reference.smk"
include: "rules/degrade.smk"
include: "rules/train.smk"
include: "rules/sample.smk"
include: "rules/evaluate.smk"
include: "rules/study.smk"
include: "rules/report.smk"


# Rules that run where Snakemake itself runs, never on a compute node: those that open a network
# connection (compute nodes often have none; tests/test_workflow_network.py finds them by their
# code and checks they are local rules; the data sets' downloads are listed beside their rules in
# rules/data.smk), and short bookkeeping that would wait longer in a queue than it runs
# (gathering shards, tables, figures, the report, the study's pages).
localrules:
    stage_weights,
    gather_samples,
    experiment_table,
    plot_training_curves,
    plot_quality_vs_steps,
    plot_samples,
    html_report,
    build_study,
    score_study,


# A real run stops before its first job when data is missing; under SLURM also when the cluster
# cannot meet a rule's request, naming the rule and the resource key (palette/slurm.py).
onstart:
    if (
        MISSING_DATA
    ):  # printed above the plan (rules/data.smk); a real run stops before any job
        _titles = ", ".join(dict.fromkeys(item.dataset for item in MISSING_DATA))
        raise ValueError(
            f"missing data for {_titles}: see the lines above; place it and run again "
            "(snakemake -n plans without it)"
        )
    if getattr(workflow.executor_plugin, "name", None) == "slurm":
        from palette.slurm import check_workflow

        check_workflow(workflow)


rule all:
    default_target: True
    input:
        f"{RESULTS}/report.html",
