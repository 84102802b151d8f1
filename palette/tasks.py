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

EVALUATION_TASKS = ("colorization", "inpainting_freeform_10_20", "inpainting_freeform_20_30",
                    "inpainting_freeform_30_40", "inpainting_center", "uncropping_right",
                    "jpeg_q5", "jpeg_q10", "jpeg_q20", "super_resolution", PAIRED_TASK)
"""The fixed evaluation variants of the paper's tables (docs/paper.md), in report order, then the
user's own pairs."""
