"""CA: top-1 of the offline classifier on labelled real photos, and agreement with GT when
there are no labels (named so)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from palette.metrics.classifier import imagenet_class_names, load_classifier, read_labels, top1_accuracy
from palette.metrics.evaluate import evaluate_folders

DATA = Path(__file__).parent / "data" / "ca_photos.csv"


@pytest.fixture(autouse=True, scope="module")
def private_weights_dir(tmp_path_factory):
    """Keep the converted-Inception cache out of the working tree's resources folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))
        yield


def load_source(source: str) -> np.ndarray:
    if source.startswith("skimage.data."):
        import skimage.data

        image = getattr(skimage.data, source.rsplit(".", 1)[1])()
        return image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
    if source.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(source.split(":", 1)[1])
    if source.startswith("matplotlib:"):
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "sample_data", source.split(":", 1)[1])
        return np.array(Image.open(path).convert("RGB"))
    raise ValueError(source)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(DATA, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def classifier():
    return load_classifier("efficientnet_lite0", "cpu", allow_network=False)


@pytest.fixture(scope="module")
def photo_folder(rows, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("labelled")
    for row in rows:
        Image.fromarray(load_source(row["source"])).save(folder / f"{row['name']}.png")
    return folder


def test_efficientnet_lite0_top1_on_labelled_photos(rows, classifier, photo_folder):
    paths = [photo_folder / f"{row['name']}.png" for row in rows]
    predictions = classifier.predict_files(paths, batch_size=4, progress=False)
    expected = [int(row["efficientnet_lite0_top1"]) for row in rows]
    names = imagenet_class_names()
    assert [names[p] for p in predictions] == [row["efficientnet_lite0_top1_name"] for row in rows]
    np.testing.assert_array_equal(predictions, expected)
    labels = np.array([int(row["label"]) for row in rows])
    assert top1_accuracy(predictions, labels) == pytest.approx(5 / 7)


def test_ca_keys_name_what_was_measured(photo_folder, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for path in sorted(photo_folder.iterdir()):
        (outputs / path.name).write_bytes(path.read_bytes())
    # an output that lost its content: uniform grey instead of the coffee cup
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(outputs / "coffee.png")

    with_labels = evaluate_folders(photo_folder, outputs, metrics="ca", labels=DATA,
                                   classifier="efficientnet_lite0", device="cpu", progress=False)
    # top-1 against the labels, but not with the paper's ResNet-50: named so, never `ca_top1`
    assert with_labels["ca_classifier"] == "efficientnet_lite0"
    assert with_labels["classifier_top1_ground_truth"] == pytest.approx(5 / 7)
    assert with_labels["classifier_top1"] == pytest.approx(4 / 7)
    assert "EfficientNet-Lite0" in with_labels["classifier_measure"]
    assert "ca_top1" not in with_labels and "classifier_agreement" not in with_labels

    without = evaluate_folders(photo_folder, outputs, metrics="ca", classifier="efficientnet_lite0",
                               device="cpu", progress=False)
    assert without["classifier_agreement"] == pytest.approx(6 / 7)
    assert without["classifier_measure"].startswith("classifier agreement (EfficientNet-Lite0)")
    assert "ca_top1" not in without and "classifier_top1" not in without


def test_ca_top1_against_labels_with_the_papers_classifier(photo_folder, classifier, tmp_path, monkeypatch):
    """The paper's CA is ResNet-50 top-1 against the true labels. ResNet-50's weights are a
    download (docs/offline-weights.md), so this routes the offline classifier's real
    predictions through the ResNet-50 branch: it checks the top-1 against the labels on
    labelled photos, the key, the per-image values and the report's CA column."""
    import dataclasses

    import palette.metrics.classifier as classifier_module
    from palette.report import flatten_metrics, metric_value

    monkeypatch.setattr(classifier_module, "load_classifier",
                        lambda *args, **kwargs: dataclasses.replace(classifier, name="resnet50"))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for path in sorted(photo_folder.iterdir()):
        (outputs / path.name).write_bytes(path.read_bytes())
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(outputs / "coffee.png")
    per_image = tmp_path / "per_image.npz"
    results = evaluate_folders(photo_folder, outputs, metrics="ca", labels=DATA, device="cpu",
                               progress=False, per_image_path=per_image)
    assert results["ca_top1"] == pytest.approx(4 / 7) and results["ca_top1_ground_truth"] == pytest.approx(5 / 7)
    with np.load(per_image) as data:
        assert data["ca_correct"].dtype == bool and data["ca_correct"].sum() == 4
        assert "classifier_agreement" not in data.files
    assert metric_value(flatten_metrics(results), "ca") == pytest.approx(400 / 7)
    # another classifier's number never reaches the paper's CA column
    assert metric_value({"classifier_top1": 0.9, "classifier_agreement": 0.8}, "ca") is None
