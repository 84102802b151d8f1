"""Degrade: fixed, seeded evaluation inputs, written once per task variant.

Each set holds source/, target/ (ground truth) and, for masked tasks, mask/ images with the same
names, from the first `dataset.evaluation_images` prepared test images (rules/prepare.smk; for
paired data the source is the pair's own, no synthetic degradation). Every experiment
evaluated on a variant reads the same set, so their numbers compare like with like.
"""


rule write_evaluation_set:
    input:
        # the prepared test list, or FID-5K for the variants evaluation.subsets names (rules/reference.smk)
        test=evaluation_list,
        # The paper's released free-form masks, when configured: a declared input, so a missing
        # file stops the plan early and a replaced one rebuilds the free-form sets.
        released_masks=lambda wildcards: (
            [EVALUATION["masks_file"]]
            if EVALUATION["masks_file"]
            and wildcards.task.startswith("inpainting_freeform")
            else []
        ),
    output:
        directory(f"{RESULTS}/evaluation_sets/{{task}}"),
    log:
        f"{RESULTS}/logs/degrade/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/degrade/{{task}}.tsv"
    conda:
        "../envs/palette.yaml"
    params:
        task="{task}",
        image_size=DATASET["image_size"],
        num_images=DATASET["evaluation_images"],
        seed=config["seed"],
        masks_file=EVALUATION["masks_file"],
    script:
        "../scripts/write_evaluation_set.py"
