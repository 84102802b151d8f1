"""Train: one model per experiment (Palette, its ablations, the regression baselines), reused by
every evaluation that needs it.

A model trains in a chain of jobs: `train_segment` jobs of `training.segment_steps` optimizer
steps each, then `train`, which takes the rest and writes the final EMA checkpoint. Each job is
short enough for a few attempts at the cluster's time limit, so a run of any length finishes in
one `snakemake` invocation (docs/architecture.md, "Long jobs"); without segment_steps the whole
run is the one `train` job.

The resumable state (periodic checkpoints, logs in progress, attempts.tsv) lives in a work
folder outside the declared outputs, named after the experiment and a digest of the trainer
settings a checkpoint must share to be resumed (palette.config.COMPATIBILITY_KEYS): Snakemake
deletes declared outputs before each attempt, so a job cut by a time limit or preemption exits
with palette.train.RESUME_EXIT_CODE, is retried, and resumes from there; an attempt after one
that made no progress stops with one line (palette.attempts). Any changed setting reruns the job;
raising `steps` or changing a speed setting (micro_batch_size, compile, ...) resumes, while a
changed lr, task or model starts a fresh folder instead of an incompatible resume.

An experiment with role external is not trained: `import_checkpoint` writes its checkpoint (a
copy of the one it names, or the public reproduction's files converted), and the training rules'
wildcard constraints leave it out (palette.external, docs/import.md).
"""


rule train_segment:
    input:
        # The prepared training images (rules/prepare.smk), checked by the data check.
        train=f"{RESULTS}/data/prepared/train.txt",
        # the segment before this one: segments run in order, each resuming where the last stopped
        previous=previous_segment,
    output:
        segment=f"{WORK}/train/{{experiment}}-{{key}}/segments/{{end}}.json",
    log:
        f"{RESULTS}/logs/train/{{experiment}}/segment_{{end}}-{{key}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}/segment_{{end}}-{{key}}.tsv"
    wildcard_constraints:
        experiment=experiment_pattern(TRAINED_EXPERIMENTS),
        key="[0-9a-f]{12}",
        end="[0-9]+",
    retries: RESUME_RETRIES
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
        attempt=lambda wildcards, attempt: attempt,  # the attempt log's key (palette.attempts)
    params:
        train_config=lambda wildcards: segment_config(
            wildcards.experiment, int(wildcards.end)
        ),
        work_dir=lambda wildcards: train_work_dir(wildcards.experiment),
    script:
        "../scripts/train.py"


rule train:
    input:
        train=f"{RESULTS}/data/prepared/train.txt",
        segment=lambda wildcards: last_segment(wildcards.experiment),
    output:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        log_csv=f"{RESULTS}/checkpoints/{{experiment}}.csv",
    log:
        f"{RESULTS}/logs/train/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}.tsv"
    wildcard_constraints:
        experiment=experiment_pattern(TRAINED_EXPERIMENTS),
    retries: RESUME_RETRIES
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
        attempt=lambda wildcards, attempt: attempt,  # the attempt log's key (palette.attempts)
    params:
        train_config=lambda wildcards: train_config(wildcards.experiment),
        work_dir=lambda wildcards: train_work_dir(wildcards.experiment),
    script:
        "../scripts/train.py"


# An external experiment's model, named instead of trained (palette.external.bring_in): checked by
# loading it (the network its config describes, finite weights, the declared task and objective,
# dataset.image_size), then copied byte for byte or converted by palette import; beside it the
# record of where it came from and how it departs from the paper, which the report reads. A local
# rule: a copy or conversion of seconds would wait longer in a cluster's queue than it runs.
rule import_checkpoint:
    input:
        unpack(external_inputs),
    output:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        record=f"{RESULTS}/checkpoints/{{experiment}}.external.json",
    log:
        f"{RESULTS}/logs/import/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import/{{experiment}}.tsv"
    wildcard_constraints:
        experiment=experiment_pattern(EXTERNAL_EXPERIMENTS),
    localrule: True
    conda:
        "../envs/palette.yaml"
    params:
        source=lambda wildcards: external_source(wildcards.experiment),
        expected=lambda wildcards: {
            "task": train_config(wildcards.experiment)["task"],
            "objective": train_config(wildcards.experiment)["objective"],
            "image_size": DATASET["image_size"],
        },
    script:
        "../scripts/import_checkpoint.py"


# The sampler travels with the model: beside each diffusion model's checkpoint, the settings of
# the sampler whose samples the report shows (the experiment's first). `palette infer` and
# `palette sample` use it unless told otherwise (palette.inference.recorded_sampler), so a photo
# restored with a checkpoint of this run looks like the report's grids. A changed sampler rewrites
# only this small file, never the checkpoint. An external experiment is no exception: its first
# sampler is the one its grids show (an imported model's own sampler stays in the checkpoint's
# `imported.sampler`, docs/import.md).
rule record_sampler:
    output:
        f"{RESULTS}/checkpoints/{{experiment}}.sampler.yaml",
    log:
        f"{RESULTS}/logs/train/{{experiment}}/record_sampler.log",
    localrule: True
    params:
        name=lambda wildcards: samplers_for(wildcards.experiment)[0],
        settings=lambda wildcards: sampler_settings(
            samplers_for(wildcards.experiment)[0]
        ),
    run:
        from palette.sampler_presets import write_sampler_record

        write_sampler_record(output[0], params.name, dict(params.settings))
