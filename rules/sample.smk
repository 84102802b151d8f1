"""Sample: each experiment's model on each task variant it is evaluated on, with each sampler
(several samples per input, for diversity). The regression baselines take one forward pass.

A run (experiment x task variant x sampler) is sampled in shards of `sampling.shard_size`
inputs, one `sample` job each (one shard without it), so several GPUs share one set and each job
fits a time limit. A shard writes its images into its own folder under the work folder, outside
the declared outputs that Snakemake deletes before each attempt: a shard cut by its time limit
(or its `sampling.time_budget`) exits 75 and its retry resumes at the first image it has not
written. `gather_samples` then links the shards' images into the samples folder the evaluation
reads (palette.shards); sharded or not, every image has the same bits (per-image seeds).
"""


rule sample:
    input:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
    output:
        shard=f"{WORK}/samples/{{experiment}}/{{task}}/{{sampler}}/shard_{{index}}_of_{{shards}}.json",
    log:
        f"{RESULTS}/logs/sample/{{experiment}}/{{task}}/{{sampler}}/shard_{{index}}_of_{{shards}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{experiment}}/{{task}}/{{sampler}}/shard_{{index}}_of_{{shards}}.tsv"
    wildcard_constraints:
        index="[0-9]+",
        shards="[0-9]+",
    retries: RESUME_RETRIES
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
        attempt=lambda wildcards, attempt: attempt,  # the attempt log's key (palette.attempts)
    params:
        sampler=lambda wildcards: sampler_settings(wildcards.sampler),
        samples_per_input=lambda wildcards: samples_per_input(wildcards.experiment),
        seed=config["seed"] + SAMPLING["seed"],
        batch_size=SAMPLING["batch_size"],
        device=EVALUATION["device"],
        shard_size=SAMPLING["shard_size"],
        time_budget=SAMPLING["time_budget"],
        shard_dir=lambda wildcards, output: output.shard[: -len(".json")],
    script:
        "../scripts/sample.py"


rule gather_samples:
    input:
        shards=lambda wildcards: shard_files(
            wildcards.experiment, wildcards.task, wildcards.sampler
        ),
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
    output:
        directory(f"{RESULTS}/samples/{{experiment}}/{{task}}/{{sampler}}"),
    log:
        f"{RESULTS}/logs/sample/{{experiment}}/{{task}}/{{sampler}}/gather.log",
    conda:
        "../envs/palette.yaml"
    params:
        samples_per_input=lambda wildcards: samples_per_input(wildcards.experiment),
    script:
        "../scripts/gather_samples.py"
