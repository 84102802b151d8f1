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
    download (docs/offline-weights.md), so this gives the offline classifier's real predictions
    the name "resnet50": it checks what the results make of that name (the top-1 against the true
    labels on labelled photos, the key, the per-image values and the report's CA column). The
    ResNet-50 loading and preprocessing run in test_resnet50_branch_on_a_stand_in_network."""
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


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def resnet50_reference_preprocess(image: np.ndarray):
    """torchvision's ResNet-50 evaluation transform written out with PIL: the short side resized to
    256 (bilinear, long side truncated as torchvision does), the centre 224x224, /255, then ImageNet's
    mean and std. Independent of palette.metrics.classifier; agrees with torchvision to one level."""
    import torch

    picture = Image.fromarray(image)
    width, height = picture.size
    size = (256, int(256 * height / width)) if width <= height else (int(256 * width / height), 256)
    picture = picture.resize(size, Image.BILINEAR)
    left, top = int(round((size[0] - 224) / 2)), int(round((size[1] - 224) / 2))
    array = np.asarray(picture.crop((left, top, left + 224, top + 224)), np.float32) / 255.0
    return torch.from_numpy((array - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)


def test_resnet50_branch_on_a_stand_in_network(rows, photo_folder, tmp_path, monkeypatch):
    """The paper's classifier as the code loads it, on a stand-in for torchvision's weights (a
    download, docs/offline-weights.md): a seeded ResNet-50 saved where palette.weights looks, its
    sha256 recorded in place of the real file's. `auto` must take it, build torchvision's ResNet-50,
    preprocess as ResNet-50 does (not as EfficientNet does) and report `ca_top1`."""
    import dataclasses

    import torch
    from torchvision.models import resnet50

    import palette.weights as weights
    from palette.metrics.classifier import load_classifier

    photos = {row["name"]: load_source(row["source"]) for row in rows}
    grey = np.full((300, 300, 3), 128, np.uint8)
    # A seeded ResNet-50 (residual branches start at zero, so the features are not swamped by 16
    # random blocks) whose last layer is centred on these photos' features: its top-1 classes
    # differ between photos, so a change of preprocessing changes them (measured: 8 distinct
    # classes on the 7 photos and the grey image; each top-1 leads by at least 0.036 in logit, while
    # the reference and torchvision's transform move the logits by about 0.002).
    torch.manual_seed(0)
    network = resnet50(zero_init_residual=True).eval()
    references = {name: resnet50_reference_preprocess(image) for name, image in {**photos, "grey": grey}.items()}
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(network.children())[:-1])
        features = trunk(torch.stack(list(references.values()))).flatten(1)
        fc_weight = torch.randn(1000, 2048, generator=torch.Generator().manual_seed(0))
        network.fc.weight.copy_(fc_weight)
        network.fc.bias.copy_(-fc_weight @ features.mean(0))
        expected = dict(zip(references, network.fc(features).argmax(1).tolist()))
    assert len(set(expected.values())) == len(expected), expected  # the stand-in tells the images apart

    spec = weights.WEIGHTS["resnet50"]
    stand_in = tmp_path / "weights" / spec.filename
    stand_in.parent.mkdir()
    torch.save(network.state_dict(), stand_in)
    monkeypatch.setitem(weights.WEIGHTS, "resnet50", dataclasses.replace(spec, sha256=weights.sha256_of(stand_in)))
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(stand_in.parent))

    classifier = load_classifier("auto", "cpu", allow_network=False)
    assert classifier.name == "resnet50" and type(classifier.model).__name__ == "ResNet"
    for name, image in photos.items():
        processed = classifier.preprocess(image)
        assert processed.shape == (3, 224, 224), name
        # EfficientNet's preprocessing ((x - 127) / 128 of a 224/256 crop) is 0.3 to 0.7 away on average
        assert float((processed - references[name]).abs().max()) < 0.02, name

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for path in sorted(photo_folder.iterdir()):
        (outputs / path.name).write_bytes(path.read_bytes())
    Image.fromarray(grey).save(outputs / "coffee.png")
    labels = {name: expected[name] for name in photos}  # the stand-in's own classes on the ground truth
    per_image = tmp_path / "per_image.npz"
    results = evaluate_folders(photo_folder, outputs, metrics="ca", labels=labels, device="cpu",
                               progress=False, per_image_path=per_image)
    assert results["ca_classifier"] == "resnet50"
    assert results["classifier_measure"] == "CA (ResNet-50 top-1 against the true labels)"
    assert results["ca_top1_ground_truth"] == 1.0
    assert results["ca_top1"] == pytest.approx(6 / 7)  # the grey coffee is classified as the grey image
    with np.load(per_image) as data:
        assert data["ca_correct"].tolist() == [name != "coffee" for name in sorted(photos)]
