"""Reference: what the evaluation measures against (docs/paper.md, evaluation protocol).

- FID reference statistics (float64 mean and covariance of pool3 features, image count, digests
  of the file list and of the Inception weights) of the paper's reference sets, each computed
  once and reused by every evaluation against it: ImageNet's 50,000 validation images, Places2's
  36,500, CelebA-HQ's held-out images, the demo's validation crops; never the evaluation targets
  alone. Reference images get the evaluation targets' preprocessing (centre square at
  dataset.image_size).
- FID-5K: the first 5000 ImageNet validation images by file name, the evaluation set of the
  paper's colorization table (evaluation.subsets), and its own reference, 5000 other validation
  images (positions 10,000..14,999 by file name: imagenet_val_fid5k_reference), as ColTran's
  evaluator does (docs/paper.md, "Which set and reference each table uses").
- The ILSVRC2012 validation labels for the paper's CA, checked (fails with instructions): a
  placed label file, or the folder names of a val/<wnid>/ layout.
- The paper's "ground truth" rows: the evaluation targets scored against the same reference.
"""


include: "reference_common.smk"


rule list_reference_images:
    input:
        # demo / CelebA-HQ / a folder / pairs: the chosen splits, prepared (checked, centre
        # squares); ImageNet: the checked lists (the data rule has verified and, if needed,
        # extracted the validation folder); Places2: its validation folder.
        splits=(
            expand(f"{RESULTS}/data/prepared/{{split}}.txt", split=reference_splits())
            if DATASET["kind"] in SPLIT_REFERENCE_KINDS
            else []
        ),
        # what such a reference must not consist of alone: the test split (the evaluation targets' list)
        test=(
            [f"{RESULTS}/data/prepared/test.txt"]
            if DATASET["kind"] in SPLIT_REFERENCE_KINDS
            else []
        ),
        checked=(
            [f"{RESULTS}/data/split/test.txt"] if DATASET["kind"] == "imagenet" else []
        ),
        val_images=(
            [f"{DATA_ROOT}/places2/val_256"] if DATASET["kind"] == "places2" else []
        ),
    output:
        f"{RESULTS}/reference/{REFERENCE_NAME}.txt",
    log:
        f"{RESULTS}/logs/reference/list_reference_images.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/list_reference_images.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        kind=DATASET["kind"],
        imagenet_val=f"{DATA_ROOT}/imagenet/val",
        expected={
            "imagenet": EXPECTED["imagenet_validation"],
            "places2": EXPECTED["places2_validation"],
        }.get(DATASET["kind"]),
    script:
        "../scripts/list_reference_images.py"


rule reference_statistics:
    """Statistics of one reference set: the data set's (list_reference_images) or FID-5K's own
    (list_fid5k_reference), named by its list."""
    input:
        files=f"{RESULTS}/reference/{{reference}}.txt",
        weights=evaluation_references()["weights"],
    output:
        f"{RESULTS}/reference/{{reference}}.npz",
    log:
        f"{RESULTS}/logs/reference/reference_statistics/{{reference}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/reference_statistics/{{reference}}.tsv"
    wildcard_constraints:
        reference="|".join(reference_names()) or "(?!)",
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        name="{reference}",
        image_size=DATASET["image_size"],
        batch_size=EVALUATION["batch_size"],
        device=EVALUATION["device"],
        weights_dir=staged_weights_dir,
    script:
        "../scripts/reference_statistics.py"


if DATASET["kind"] == "imagenet":

    rule list_fid5k:
        input:
            checked=f"{RESULTS}/data/split/test.txt",
        output:
            f"{RESULTS}/data/fid5k.txt",
        log:
            f"{RESULTS}/logs/data/list_fid5k.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/list_fid5k.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            imagenet_val=f"{DATA_ROOT}/imagenet/val",
            images=EXPECTED["fid5k"],
        script:
            "../scripts/list_fid5k.py"

    rule list_fid5k_reference:
        """FID-5K's reference: dataset.expected.fid5k_reference validation images by file name
        from position dataset.expected.fid5k_reference_offset on, never one FID-5K evaluates.
        """
        input:
            checked=f"{RESULTS}/data/split/test.txt",
        output:
            f"{RESULTS}/reference/{FID5K_REFERENCE_NAME}.txt",
        log:
            f"{RESULTS}/logs/reference/list_fid5k_reference.log",
        benchmark:
            f"{RESULTS}/benchmarks/reference/list_fid5k_reference.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            imagenet_val=f"{DATA_ROOT}/imagenet/val",
            evaluated=EXPECTED["fid5k"],
            offset=EXPECTED["fid5k_reference_offset"],
            images=EXPECTED["fid5k_reference"],
        script:
            "../scripts/list_fid5k_reference.py"

    rule imagenet_labels:
        input:
            # the data rule has checked the layout (and extracted a placed validation archive)
            checked=f"{RESULTS}/data/split/test.txt",
        output:
            IMAGENET_LABELS,
        log:
            f"{RESULTS}/logs/data/imagenet_labels.log",
        benchmark:
            f"{RESULTS}/benchmarks/data/imagenet_labels.tsv"
        conda:
            "../envs/workflow.yaml"
        params:
            path=EVALUATION["imagenet_labels"] or f"{DATA_ROOT}/imagenet",
            imagenet_val=f"{DATA_ROOT}/imagenet/val",
            classes=EXPECTED["imagenet_classes"],
            expected=EXPECTED["imagenet_validation"],
        script:
            "../scripts/imagenet_labels.py"


rule evaluate_ground_truth:
    input:
        evaluation_set=f"{RESULTS}/evaluation_sets/{{task}}",
        reference=fid_reference_statistics,
        labels=evaluation_references()["labels"],
        weights=evaluation_references()["weights"],
    output:
        json=f"{RESULTS}/metrics/ground_truth/{{task}}.json",
        per_image=f"{RESULTS}/metrics/ground_truth/{{task}}.npz",
    log:
        f"{RESULTS}/logs/evaluate/ground_truth/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/ground_truth/{{task}}.tsv"
    conda:
        "../envs/palette.yaml"
    resources:
        gpu=1,
    params:
        metrics=GROUND_TRUTH_METRICS,
        subset=evaluation_subset_params,
        batch_size=EVALUATION["batch_size"],
        device=EVALUATION["device"],
        weights_dir=staged_weights_dir,
    script:
        "../scripts/evaluate.py"
