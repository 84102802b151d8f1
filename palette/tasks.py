"""Task names, in one torch-free place: the trainer and degradations use them, and so does the
Snakefile (which must not import torch) and the workflow's config schema (kept equal by a test)."""

TRAINING_TASKS = ("colorization", "inpainting", "uncropping", "jpeg", "super_resolution", "multitask")
"""What a model is trained on (degradations drawn on the fly); `multitask` mixes three of them."""

EVALUATION_TASKS = ("colorization", "inpainting_freeform_10_20", "inpainting_freeform_20_30",
                    "inpainting_freeform_30_40", "inpainting_center", "uncropping_right",
                    "jpeg_q5", "jpeg_q10", "jpeg_q20", "super_resolution")
"""The fixed evaluation variants of the paper's tables (docs/paper.md), in report order."""
