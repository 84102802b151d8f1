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
    assert with_labels["ca_classifier"] == "efficientnet_lite0"
    assert with_labels["ca_top1_ground_truth"] == pytest.approx(5 / 7)
    assert with_labels["ca_top1"] == pytest.approx(4 / 7)
    assert "ca_agreement_with_gt" not in with_labels

    without = evaluate_folders(photo_folder, outputs, metrics="ca", classifier="efficientnet_lite0",
                               device="cpu", progress=False)
    assert without["ca_agreement_with_gt"] == pytest.approx(6 / 7)
    assert "ca_top1" not in without


def test_auto_classifier_falls_back_to_efficientnet_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision cache either
    model = load_classifier("auto", "cpu", allow_network=False)
    assert model.name == "efficientnet_lite0"


def test_labels_file_reader(tmp_path):
    assert read_labels(DATA)["coffee"] == 967
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\na,1\n")
    with pytest.raises(ValueError, match="name"):
        read_labels(bad)


def test_auto_classifier_prefers_resnet50_when_its_weights_resolve(tmp_path, monkeypatch, photo_folder):
    """The ResNet-50 path with a stand-in weight file (the real one is a download): `auto` takes
    it once it resolves, still checked against the (here: stand-in's) recorded sha256."""
    import dataclasses

    import torch
    import torchvision

    from palette import weights

    torch.manual_seed(0)
    stand_in = tmp_path / weights.WEIGHTS["resnet50"].filename
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), stand_in)
    monkeypatch.setitem(weights.WEIGHTS, "resnet50",
                        dataclasses.replace(weights.WEIGHTS["resnet50"], sha256=weights.sha256_of(stand_in)))
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path))
    model = load_classifier("auto", "cpu", allow_network=False)
    assert model.name == "resnet50"
    assert tuple(model.preprocess(load_source("skimage.data.coffee")).shape) == (3, 224, 224)
    predictions = model.predict_files(sorted(photo_folder.iterdir())[:2], progress=False)
    assert predictions.shape == (2,) and ((0 <= predictions) & (predictions < 1000)).all()
