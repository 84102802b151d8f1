"""Data: the images a run trains and evaluates on, as file lists (train / val / test).

demo_photos: multi-scale crops of the photos that install with the project, split by a seeded
shuffle. celebahq: the user's CelebA-HQ folder, checked, then split the same way. places2:
Places365-Standard archives downloaded and md5-checked, places10k as the test list. imagenet:
the user's ILSVRC2012 folders, checked, ctest10k (downloaded) as the test list.
Raw data sets live under dataset.root, outside the results folder; only lists are results.
"""

import re

from palette.workflow_data import PLACES365_URL

DATA_ROOT = DATASET["root"].rstrip("/")


if DATASET["kind"] == "demo_photos":

    rule cut_demo_crops:
        output:
            crops=directory(f"{RESULTS}/data/crops"),
            files=f"{RESULTS}/data/all_files.txt",
        log:
            f"{RESULTS}/logs/data/cut_demo_crops.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/cut_demo_crops.tsv"
        conda:
            "../envs/palette.yaml"
        params:
            crop_size=DATASET["image_size"],
            scales=list(DATASET["crops"]["scales"]),
            crops_per_scale=DATASET["crops"]["crops_per_scale"],
            seed=config["seed"],
        script:
            "../scripts/cut_demo_crops.py"


if DATASET["kind"] == "celebahq":

    rule list_celebahq:
        output:
            files=f"{RESULTS}/data/all_files.txt",
        log:
            f"{RESULTS}/logs/data/list_celebahq.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_celebahq.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            root=f"{DATA_ROOT}/celebahq",
            expected=30000,
        script:
            "../scripts/list_celebahq.py"


if DATASET["kind"] in ("demo_photos", "celebahq"):

    rule split_dataset:
        input:
            files=f"{RESULTS}/data/all_files.txt",
        output:
            train=f"{RESULTS}/data/split/train.txt",
            val=f"{RESULTS}/data/split/val.txt",
            test=f"{RESULTS}/data/split/test.txt",
        log:
            f"{RESULTS}/logs/data/split_dataset.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/split_dataset.tsv"
        conda:
            "../envs/palette.yaml"
        params:
            fractions=canonical(DATASET["split"]),
            holdout=canonical(DATASET["holdout"]),
            seed=config["seed"],
        script:
            "../scripts/split_dataset.py"


if DATASET["kind"] == "places2":

    rule download_places2_archive:
        output:
            f"{DATA_ROOT}/places2/archives/{{archive}}",
        log:
            f"{RESULTS}/logs/data/download_places2_archive/{{archive}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/download_places2_archive/{{archive}}.tsv"
        wildcard_constraints:
            archive="|".join(re.escape(name) for name in PLACES365_ARCHIVES),
        retries: 2
        conda:
            "../envs/workflow.yaml"
        resources:
            downloads=1,
        params:
            url=lambda wildcards: PLACES365_URL + wildcards.archive,
            md5=lambda wildcards: PLACES365_ARCHIVES[wildcards.archive],
        script:
            "../scripts/download.py"

    rule extract_places2_archive:
        input:
            f"{DATA_ROOT}/places2/archives/{{name}}.tar",
        output:
            directory(f"{DATA_ROOT}/places2/{{name}}"),
        log:
            f"{RESULTS}/logs/data/extract_places2_archive/{{name}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/extract_places2_archive/{{name}}.tsv"
        conda:
            "../envs/workflow.yaml"
        script:
            "../scripts/extract_archive.py"

    rule list_places2:
        input:
            filelist=f"{DATA_ROOT}/places2/filelist_places365-standard",
            val_images=f"{DATA_ROOT}/places2/val_256",
            train_images=f"{DATA_ROOT}/places2/train_256_places365standard",
        output:
            train=f"{RESULTS}/data/split/train.txt",
            val=f"{RESULTS}/data/split/val.txt",
            test=f"{RESULTS}/data/split/test.txt",
        log:
            f"{RESULTS}/logs/data/list_places2.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_places2.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            per_class=30,
        script:
            "../scripts/list_places2.py"


if DATASET["kind"] == "imagenet":

    rule download_ctest10k_list:
        output:
            f"{RESULTS}/data/ctest10k.txt",
        log:
            f"{RESULTS}/logs/data/download_ctest10k_list.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/download_ctest10k_list.tsv"
        retries: 2
        conda:
            "../envs/workflow.yaml"
        params:
            url=DATASET["test_list"]["url"],
            sha256=DATASET["test_list"]["sha256"],
            expected_count=DATASET["test_list"]["expected_count"],
        script:
            "../scripts/download_ctest10k.py"

    rule list_imagenet:
        input:
            ctest10k=f"{RESULTS}/data/ctest10k.txt",
        output:
            train=f"{RESULTS}/data/split/train.txt",
            val=f"{RESULTS}/data/split/val.txt",
            test=f"{RESULTS}/data/split/test.txt",
        log:
            f"{RESULTS}/logs/data/list_imagenet.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_imagenet.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            root=f"{DATA_ROOT}/imagenet",
            expected_count=DATASET["test_list"]["expected_count"],
            val_images=1000,
        script:
            "../scripts/list_imagenet.py"


if DATASET["kind"] == "folder":

    rule list_folder:
        output:
            train=f"{RESULTS}/data/split/train.txt",
            val=f"{RESULTS}/data/split/val.txt",
            test=f"{RESULTS}/data/split/test.txt",
        log:
            f"{RESULTS}/logs/data/list_folder.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_folder.tsv"
        conda:
            "../envs/palette.yaml"
        params:
            root=DATA_ROOT,
            fractions=canonical(DATASET["split"]),
            seed=config["seed"],
        script:
            "../scripts/list_folder.py"


if DATASET["kind"] == "paired":

    rule list_pairs:
        output:
            train=f"{RESULTS}/data/split/train.txt",
            val=f"{RESULTS}/data/split/val.txt",
            test=f"{RESULTS}/data/split/test.txt",
            pairs=f"{RESULTS}/data/pairs.tsv",
        log:
            f"{RESULTS}/logs/data/list_pairs.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_pairs.tsv"
        conda:
            "../envs/palette.yaml"
        params:
            root=DATA_ROOT,
            fractions=canonical(DATASET["split"]),
            seed=config["seed"],
        script:
            "../scripts/list_pairs.py"
