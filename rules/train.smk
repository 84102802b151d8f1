"""Train: one model per experiment (Palette, its ablations, the regression baselines), reused by
every evaluation that needs it.

The resumable state (periodic checkpoints, logs in progress) lives in a work folder outside the
declared outputs, named after the experiment and a digest of its trainer config: Snakemake
deletes declared outputs before each attempt, so a job cut by a time limit or preemption exits
with palette.train.RESUME_EXIT_CODE, is retried, and resumes from there; a changed config starts
a fresh folder instead of resuming an incompatible run.
"""


def train_work_dir(wildcards):
    settings = json.dumps(train_config(wildcards.experiment), sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return f"{WORK}/train/{wildcards.experiment}-{digest}"


rule train:
    input:
        train=f"{RESULTS}/data/split/train.txt",
    output:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        log_csv=f"{RESULTS}/training_logs/{{experiment}}.csv",
    params:
        train_config=lambda wildcards: train_config(wildcards.experiment),
        work_dir=train_work_dir,
    log:
        f"{RESULTS}/logs/train/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{experiment}}.tsv"
    retries: 3
    resources:
        gpu=1,
    conda:
        "../envs/palette.yaml"
    script:
        "../scripts/train.py"
