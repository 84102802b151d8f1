"""Train: one model per experiment (Palette, its ablations, the regression baselines), reused by
every evaluation that needs it.

The resumable state (periodic checkpoints, logs in progress) lives in a work folder outside the
declared outputs, named after the experiment and a digest of the trainer settings a checkpoint
must share to be resumed (palette.config.COMPATIBILITY_KEYS): Snakemake deletes declared outputs
before each attempt, so a job cut by a time limit or preemption exits with
palette.train.RESUME_EXIT_CODE, is retried, and resumes from there. Any changed setting reruns
the job; raising `steps` or changing a speed setting (micro_batch_size, compile, ...) resumes,
while a changed lr, task or model starts a fresh folder instead of an incompatible resume.
"""


rule train:
    input:
        # The prepared training images (rules/prepare.smk), checked by the data check.
        train=f"{RESULTS}/data/prepared/train.txt",
    output:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        log_csv=f"{RESULTS}/checkpoints/{{experiment}}.csv",
    log:
        f"{RESULTS}/logs/train/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}.tsv"
    retries: 3
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        train_config=lambda wildcards: train_config(wildcards.experiment),
        work_dir=train_work_dir,
    script:
        "../scripts/train.py"
