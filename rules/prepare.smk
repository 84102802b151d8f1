"""Prepare: the data check, then every split's images preprocessed once.

check_data opens every listed image the way training reads it and writes a JSON report and a
short table (shown in the report): counts, sizes, modes and their conversion, unreadable files
(skipped or failing, dataset.on_bad_file), images smaller than image_size, and duplicates by
content hash; a file in two splits (a leak) fails the check, naming both files.

prepare_split writes split {split} preprocessed the paper's way (the largest centre square
resized to image_size, palette.prepare) and lists the files; training and the evaluation sets
read these lists, so both see one scale. dataset.preprocess: random_crop_native keeps the
training split at native resolution instead (random crops at load time).
"""


rule check_data:
    input:
        train=f"{RESULTS}/data/split/train.txt",
        val=f"{RESULTS}/data/split/val.txt",
        test=f"{RESULTS}/data/split/test.txt",
        pairs=pair_list(),
    output:
        json=f"{RESULTS}/data/check.json",
        table=f"{RESULTS}/data/check.tsv",
    log:
        f"{RESULTS}/logs/data/check_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/check_data.tsv"
    conda:
        "../envs/palette.yaml"
    threads: 8
    params:
        image_size=DATASET["image_size"],
        on_bad_file=DATASET["on_bad_file"],
    script:
        "../scripts/check_data.py"


rule prepare_split:
    input:
        files=f"{RESULTS}/data/split/{{split}}.txt",
        check=f"{RESULTS}/data/check.json",
        pairs=pair_list(),
    output:
        folder=directory(f"{RESULTS}/data/prepared/{{split}}"),
        files=f"{RESULTS}/data/prepared/{{split}}.txt",
    log:
        f"{RESULTS}/logs/data/prepare_split/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/prepare_split/{{split}}.tsv"
    conda:
        "../envs/palette.yaml"
    threads: 8
    params:
        image_size=DATASET["image_size"],
        # Evaluation splits are always prepared the paper's way; the option is training's.
        preprocess=lambda wildcards: (
            DATASET["preprocess"] if wildcards.split == "train" else "center_square"
        ),
    script:
        "../scripts/prepare_split.py"
