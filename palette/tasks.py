"""Task names, in one torch-free place: the trainer and degradations use them, and so does the
Snakefile (which must not import torch) and the workflow's config schema (kept equal by a test)."""

PAIRED_TASK = "paired"
"""The user's own degradation (dataset.kind: paired): the source comes from a file beside the
target, not from a synthetic degradation; no mask. Trained and evaluated under this name."""

TRAINING_TASKS = ("colorization", "inpainting", "uncropping", "jpeg", "super_resolution", "multitask", PAIRED_TASK)
"""What a model is trained on (degradations drawn on the fly, or the pairs for `paired`);
`multitask` mixes three of them."""

UNMASKED_TRAINING_TASKS = ("colorization", "jpeg", "super_resolution", PAIRED_TASK)
"""Training tasks whose source is a degraded copy of the whole target, with no mask: the ones
residual diffusion (train key `residual`) can use."""

COLORIZATION_CTEST10K = "colorization_ctest10k"
"""Colorization scored on ImageNet's ctest10k against the 50,000-image reference, as the paper's
L1/L2, multi-task and appendix ctest10k tables are; `colorization` itself is scored on FID-5K by
the ImageNet preset, for the colorization table (docs/paper.md, "Which set and reference each
table uses"). The same degradation as `colorization`; ImageNet only."""

EVALUATION_TASKS = ("colorization", COLORIZATION_CTEST10K, "inpainting_freeform_10_20", "inpainting_freeform_20_30",
                    "inpainting_freeform_30_40", "inpainting_center", "uncropping_right",
                    "jpeg_q5", "jpeg_q10", "jpeg_q20", "super_resolution", PAIRED_TASK)
"""The fixed evaluation variants of the paper's tables (docs/paper.md), in report order, then the
user's own pairs."""

SAME_DEGRADATION_AS = {COLORIZATION_CTEST10K: "colorization"}
"""Evaluation variants that differ from another only in the images they are scored on: the
variant whose degradation they share."""

IMAGENET_ONLY_TASKS = (COLORIZATION_CTEST10K,)
"""Evaluation variants named after an ImageNet evaluation set: refused on other data sets."""


def colorization_on_test_list(dataset_kind: str) -> str:
    """The variant that scores colorization on the data set's test list, as the paper's L1/L2 and
    multi-task tables do: `colorization_ctest10k` on ImageNet (where the ImageNet preset puts
    `colorization` on FID-5K), `colorization` on every other data set."""
    return COLORIZATION_CTEST10K if dataset_kind == "imagenet" else "colorization"
