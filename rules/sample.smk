"""Sample: each experiment's model on each task variant it is evaluated on, with each sampler
(several samples per input, for diversity). The regression baselines take one forward pass.
"""


rule sample:
    input:
        checkpoint=f"{RESULTS}/checkpoints/{{experiment}}.pt",
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
    output:
        directory(f"{RESULTS}/samples/{{experiment}}/{{task}}/{{sampler}}"),
    log:
        f"{RESULTS}/logs/sample/{{experiment}}/{{task}}/{{sampler}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample/{{experiment}}/{{task}}/{{sampler}}.tsv"
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        sampler=lambda wildcards: sampler_settings(wildcards.sampler),
        samples_per_input=lambda wildcards: samples_per_input(wildcards.experiment),
        seed=config["seed"] + SAMPLING["seed"],
        batch_size=SAMPLING["batch_size"],
        device=EVALUATION["device"],
    script:
        "../scripts/sample.py"
