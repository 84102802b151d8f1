"""Data: the images a run trains and evaluates on, as file lists (train / val / test).

demo_photos: multi-scale crops of the photos that install with the project, split by a seeded
shuffle. celebahq: the user's CelebA-HQ folder, checked, then split the same way. places2:
Places365-Standard archives downloaded and md5-checked, places10k as the test list. imagenet:
the user's ILSVRC2012 folders, checked, ctest10k (downloaded) as the test list.
Raw data sets live under dataset.root, outside the results folder; only lists are results.
The sizes the rules check (dataset.expected) are the paper's unless a miniature shrinks them.
"""

import re
import sys

from palette.workflow_data import (
    missing_data,
    missing_data_report,
    places2_archive_source,
)

DATA_ROOT = DATASET["root"].rstrip("/")
EXPECTED = DATASET["expected"]

# Say now what data is missing, before the plan, not hours in when its listing job runs. A dry
# run (and --unlock, --lint, ...) only prints; a real run stops in the Snakefile's `onstart`,
# before anything is submitted. Jobs that re-read the Snakefile (SLURM's remote jobs) skip this:
# their own checks speak.
MISSING_DATA = missing_data(DATASET, EVALUATION) if workflow.is_main_process else []
if MISSING_DATA:
    print(missing_data_report(MISSING_DATA) + "\n", file=sys.stderr, flush=True)


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
            expected=EXPECTED["celebahq"],
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

    # downloads run where the network is (the login node on a cluster), never on a compute node
    localrules:
        download_places2_archive,

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
            url=lambda wildcards: places2_archive_source(
                DATASET["places2_archives"], wildcards.archive
            )[0],
            md5=lambda wildcards: places2_archive_source(
                DATASET["places2_archives"], wildcards.archive
            )[1],
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
            per_class=EXPECTED["places10k_per_class"],
            classes=EXPECTED["places2_classes"],
        script:
            "../scripts/list_places2.py"


if DATASET["kind"] == "imagenet":

    localrules:
        download_ctest10k_list,

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
            classes=EXPECTED["imagenet_classes"],
            validation_images=EXPECTED["imagenet_validation"],
            # the val split: at most this many validation images outside ctest10k (a cap, not a check)
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
