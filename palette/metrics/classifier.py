"""Classification accuracy (CA): top-1 of a pre-trained ImageNet classifier on the outputs.

The paper's main text uses ResNet-50 (torchvision's weights, a download); its appendix says
EfficientNet-B0. Offline, EfficientNet-Lite0 (TF ImageNet weights shipped in a pip package) is
the classifier: `load_classifier("auto")` takes ResNet-50 when its weights resolve and falls back
to EfficientNet-Lite0 otherwise, and every result names the classifier used.

The paper's CA is ResNet-50's top-1 against the true labels (`ca_top1` in
`palette.metrics.evaluate`). Another classifier's top-1 against labels is `classifier_top1`;
without labels the number is the agreement between the classifier's prediction on the output
and on the ground truth (`classifier_agreement`): different quantities, always named as such
and never reported as CA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from palette.distributed import resolve_device
from palette.imageio import read_rgb

CLASSIFIERS = ("resnet50", "efficientnet_lite0")


@dataclass
class Classifier:
    name: str
    model: torch.nn.Module
    preprocess: Callable[[np.ndarray], torch.Tensor]  # uint8 [H, W, 3] -> float [3, S, S]
    device: torch.device

    @torch.no_grad()
    def predict_arrays(self, images: Sequence[np.ndarray], batch_size: int = 32,
                       description: str = "classifier", progress: bool = True) -> np.ndarray:
        """int64 [N] top-1 ImageNet class indices (0..999)."""
        predictions = []
        for start in tqdm(range(0, len(images), batch_size), desc=description, unit="batch",
                          disable=not progress):
            batch = torch.stack([self.preprocess(im) for im in images[start : start + batch_size]])
            predictions.append(self.model(batch.to(self.device)).argmax(dim=1).cpu().numpy())
        return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)

    def predict_files(self, paths: Sequence[str | Path], batch_size: int = 32,
                      description: str = "classifier", progress: bool = True) -> np.ndarray:
        predictions = []
        bar = tqdm(total=len(paths), desc=description, unit="img", disable=not progress)
        for start in range(0, len(paths), batch_size):
            chunk = [read_rgb(p) for p in paths[start : start + batch_size]]
            predictions.append(self.predict_arrays(chunk, batch_size, progress=False))
            bar.update(len(chunk))
        bar.close()
        return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)


def _tf_efficientnet_preprocess(size: int, crop_padding: int = 32):
    """TF EfficientNet eval preprocessing: centre crop of size/(size+32) of the short side,
    bicubic resize to `size`, then (x - 127) / 128 (the Lite models' MEAN_RGB / STDDEV_RGB).
    Measured on the shipped photos this normalisation gives the confident, correct predictions;
    torchvision's ImageNet mean/std does not (the weights are TF's)."""

    def preprocess(image: np.ndarray) -> torch.Tensor:
        height, width = image.shape[:2]
        crop = int(size / (size + crop_padding) * min(height, width))
        top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
        resized = Image.fromarray(image[top : top + crop, left : left + crop]).resize((size, size), Image.BICUBIC)
        array = (np.asarray(resized, np.float32) - 127.0) / 128.0
        return torch.from_numpy(array).permute(2, 0, 1)

    return preprocess


def _torchvision_preprocess():
    from torchvision.models import ResNet50_Weights

    transform = ResNet50_Weights.IMAGENET1K_V1.transforms()  # resize 256, crop 224, ImageNet mean/std

    def preprocess(image: np.ndarray) -> torch.Tensor:
        return transform(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))

    return preprocess


def load_classifier(name: str = "auto", device=None, weights_path: str | os.PathLike | None = None,
                    weights_dir: str | os.PathLike | None = None,
                    allow_network: bool | None = None) -> Classifier:
    """`resnet50`, `efficientnet_lite0`, or `auto` (ResNet-50 if its weights resolve, else Lite0)."""
    from palette.weights import WeightsNotFoundError, resolve

    device = resolve_device(device)
    path = None
    if name == "auto":
        try:
            path = resolve("resnet50", weights_path, weights_dir, allow_network)
            name = "resnet50"
        except WeightsNotFoundError:
            name = "efficientnet_lite0"
            weights_path = None
    if name == "resnet50":
        from torchvision.models import resnet50

        model = resnet50()
        path = path or resolve("resnet50", weights_path, weights_dir, allow_network)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        preprocess = _torchvision_preprocess()
    elif name == "efficientnet_lite0":
        from importlib.util import find_spec

        if find_spec("efficientnet_lite_pytorch") is None:
            raise ModuleNotFoundError(
                "EfficientNet-Lite0 needs its model code: `pip install --no-deps efficientnet-lite-pytorch==0.1.0`"
            )
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        path = resolve("efficientnet_lite0", weights_path, weights_dir, allow_network)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        preprocess = _tf_efficientnet_preprocess(224)
    else:
        raise ValueError(f"unknown classifier {name!r}; choose from auto, {', '.join(CLASSIFIERS)}")
    return Classifier(name, model.eval().requires_grad_(False).to(device), preprocess, device)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (from torchvision's metadata, no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def top1_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or len(labels) == 0:
        raise ValueError(f"need equally many predictions and labels, got {predictions.shape} and {labels.shape}")
    return float(np.mean(predictions == labels))


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """Labels file: CSV with a header holding `name` and `label` (ImageNet class index) columns.

    `name` is the image file name, with or without its extension.
    """
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"name", "label"} <= set(rows[0]):
        raise ValueError(f"{path}: expected a CSV header with `name` and `label` columns")
    return {row["name"]: int(row["label"]) for row in rows}


def labels_for(paths: Sequence[Path], labels: dict[str, int]) -> np.ndarray:
    """Label of each image path, matched by file name or stem; error listing any without one."""
    out, missing = [], []
    for path in paths:
        label = labels.get(path.name, labels.get(path.stem))
        if label is None:
            missing.append(path.name)
        out.append(-1 if label is None else label)
    if missing:
        raise KeyError(f"{len(missing)} images have no label: {', '.join(missing[:10])}")
    return np.asarray(out, np.int64)
