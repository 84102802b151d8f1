"""FID: our eager TF Inception + clean resize + streamed float64 statistics against clean-fid's
own `compute_fid` (same TorchScript weights) and against a float64 scipy reference."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from palette.metrics import fid as fid_module
from palette.metrics.fid import FeatureStatistics, StreamingStatistics, folder_statistics, frechet_distance
from palette.metrics.inception import clean_resize, features_of_arrays, load_inception, preprocess_batch
from palette.weights import resolve

PHOTOS_PER_FOLDER = 8


def real_photos() -> dict[str, np.ndarray]:
    """Colour photos that install with scikit-image and scikit-learn (docs/offline-weights.md)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}
    photos["motorcycle"] = skimage.data.stereo_motorcycle()[0]
    sample = load_sample_images()
    for filename, image in zip(sample.filenames, sample.images):
        photos[Path(filename).stem] = image
    return photos


def write_crops(folder: Path, photos: list[np.ndarray], count: int, seed: int) -> Path:
    """`count` random crops of varied, non-square sizes (so the resize to 299 matters)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = photos[index % len(photos)]
        height, width = rng.integers(80, 200), rng.integers(80, 200)
        top, left = rng.integers(0, photo.shape[0] - height), rng.integers(0, photo.shape[1] - width)
        Image.fromarray(photo[top : top + height, left : left + width]).save(folder / f"crop_{index:03d}.png")
    return folder


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def inception(weights_dir):
    return load_inception("cpu", weights_dir=str(weights_dir))


@pytest.fixture(scope="module")
def torchscript_inception():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(resolve("inception_fid", allow_network=False)), map_location="cpu").eval()


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory):
    photos = real_photos()
    root = tmp_path_factory.mktemp("photos")
    first = write_crops(root / "a", [photos[n] for n in ("chelsea", "coffee", "astronaut", "rocket")],
                        PHOTOS_PER_FOLDER, seed=1)
    second = write_crops(root / "b", [photos[n] for n in ("motorcycle", "china", "flower", "coffee")],
                         PHOTOS_PER_FOLDER, seed=2)
    return first, second


def scipy_reference_fid(mu1, sigma1, mu2, sigma2) -> float:
    """Independent float64 reference: Tr((S1 S2)^1/2) = sum sqrt(eig(S1^1/2 S2 S1^1/2))."""
    root1 = scipy.linalg.sqrtm(sigma1).real
    eigenvalues = scipy.linalg.eigvalsh(root1 @ sigma2 @ root1)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def test_frechet_distance_matches_float64_scipy_reference_on_random_features():
    rng = np.random.default_rng(0)
    dim = 64
    a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim)) * 0.3
    b = rng.normal(loc=0.5, size=(400, dim)) @ rng.normal(size=(dim, dim)) * 0.3
    mu1, sigma1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, sigma2 = b.mean(0), np.cov(b, rowvar=False)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    reference = scipy_reference_fid(mu1, sigma1, mu2, sigma2)
    assert ours == pytest.approx(reference, rel=1e-9)
    assert ours > 1.0
    assert frechet_distance(mu1, sigma1, mu1, sigma1) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form_for_one_dimensional_gaussians():
    # (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2), N(m2, s2^2)
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_streaming_statistics_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(1)
    features = (rng.normal(size=(257, 32)) * 3 + 100).astype(np.float32)  # large offset: stability
    stats = StreamingStatistics(32)
    for start, stop in [(0, 1), (1, 50), (50, 51), (51, 257)]:
        stats.update(features[start:stop])
    mu, sigma = stats.mean_and_covariance()
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)


def test_clean_resize_equals_clean_fid_resizer():
    from cleanfid.resize import build_resizer

    image = real_photos()["coffee"][:123, :217]
    np.testing.assert_array_equal(clean_resize(image), build_resizer("clean")(image))


def test_eager_inception_matches_torchscript_graph(inception, torchscript_inception):
    photos = real_photos()
    images = [photos["chelsea"], photos["coffee"][:150, :200]]
    ours = features_of_arrays(inception, images, progress=False)
    with torch.no_grad():
        theirs = torchscript_inception(preprocess_batch(images)).numpy()
    assert ours.shape == (2, 2048)
    np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)


@pytest.fixture(scope="module")
def both_fids(photo_folders, inception, torchscript_inception):
    """(ours, clean-fid's) FID between the two photo folders; each costs one 2048-d sqrtm."""
    from cleanfid import fid as cleanfid_fid
    from cleanfid.inception_torchscript import InceptionV3W

    first, second = photo_folders
    # clean-fid's own feature wrapper around the same TorchScript graph (its download skipped)
    wrapper = InceptionV3W.__new__(InceptionV3W)
    torch.nn.Module.__init__(wrapper)
    wrapper.base, wrapper.layers, wrapper.resize_inside = torchscript_inception, torchscript_inception.net.layers, False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's deprecation of sqrtm(disp=...) inside clean-fid
        reference = cleanfid_fid.compute_fid(
            str(first), str(second), mode="clean", custom_feat_extractor=wrapper, num_workers=0,
            batch_size=8, device=torch.device("cpu"), verbose=False, use_dataparallel=False,
        )
    ours = fid_module.fid_between_folders(first, second, model=inception, progress=False)
    return ours, reference


def test_fid_equals_clean_fid_compute_fid(both_fids):
    ours, reference = both_fids
    assert reference > 10.0  # different photos: a clearly non-zero distance
    assert ours == pytest.approx(reference, rel=1e-4)


def test_fid_against_saved_statistics_uses_the_saved_reference(photo_folders, inception, tmp_path, monkeypatch):
    """Plumbing only (the Frechet distance itself is tested above): the statistics of the folder
    and of the saved .npz reach the distance unchanged. Avoids another 2048-d sqrtm."""
    first, second = photo_folders
    stats_path = tmp_path / "second.npz"
    saved = folder_statistics(second, inception, progress=False)
    saved.save(stats_path)
    expected_first = folder_statistics(first, inception, progress=False)
    seen = {}

    def recording_distance(mu1, sigma1, mu2, sigma2):
        seen.update(mu1=mu1, sigma1=sigma1, mu2=mu2, sigma2=sigma2)
        return 123.0

    monkeypatch.setattr(fid_module, "frechet_distance", recording_distance)
    assert fid_module.fid_against_statistics(first, stats_path, model=inception, progress=False) == 123.0
    np.testing.assert_allclose(seen["mu1"], expected_first.mu, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(seen["mu2"], saved.mu)
    np.testing.assert_array_equal(seen["sigma2"], saved.sigma)
    assert FeatureStatistics.load(stats_path).count == PHOTOS_PER_FOLDER


def test_reference_statistics_are_cached_by_content(photo_folders, inception, tmp_path, monkeypatch):
    first, _ = photo_folders
    folder = tmp_path / "ref"
    folder.mkdir()
    for path in sorted(first.iterdir())[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    cache = tmp_path / "cache"
    computed = folder_statistics(folder, inception, cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1 and computed.count == 3

    # second call: served from the cache, no network pass
    def no_features(*args, **kwargs):
        raise AssertionError("statistics were recomputed although cached")

    monkeypatch.setattr("palette.metrics.inception.iter_file_features", no_features)
    cached = folder_statistics(folder, inception, cache, progress=False)
    np.testing.assert_array_equal(cached.mu, computed.mu)
    np.testing.assert_array_equal(cached.sigma, computed.sigma)

    # changing one image's content changes the key, so the statistics are recomputed
    monkeypatch.undo()
    victim = sorted(folder.iterdir())[0]
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(victim)
    changed = folder_statistics(folder, inception, cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.allclose(changed.mu, computed.mu)


def test_low_rank_trace_equals_the_full_eigendecomposition():
    """Fewer images than feature dimensions: the k x k form gives the same distance."""
    from palette.metrics.fid import covariance_factor

    rng = np.random.default_rng(3)
    dim = 96
    a = rng.normal(size=(40, dim)) @ rng.normal(size=(dim, dim)) * 0.2
    b = rng.normal(loc=0.3, size=(300, dim)) @ rng.normal(size=(dim, dim)) * 0.2
    mu1, sigma1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, sigma2 = b.mean(0), np.cov(b, rowvar=False)
    # Independent exact reference: with S1 = F F^T and S2 = L L^T (Cholesky; S2 has full rank),
    # Tr (S1 S2)^(1/2) is the sum of the singular values of L^T F.
    factor = (a - mu1).T / np.sqrt(len(a) - 1)
    trace_sqrt = np.linalg.svd(np.linalg.cholesky(sigma2).T @ factor, compute_uv=False).sum()
    reference = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    assert frechet_distance(mu1, sigma1, mu2, sigma2, factor1=covariance_factor(a)) == pytest.approx(reference, rel=1e-10)
    # the d x d form takes square roots of the rounding-noise eigenvalues of the singular S1
    # (about 1e-7 each): agreement to 1e-7 relative; a general sqrtm of singular S1 is worse
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(reference, rel=1e-7)


class EagerForCleanFid(torch.nn.Module):
    """Our eager Inception behind clean-fid's feature-extractor interface (0..255 input, as its
    InceptionV3W receives), so clean-fid's own reading, resizing and statistics run on the very
    network ours use and any difference is in the pipelines, not in the weights."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model((batch - 128.0) / 128.0)


def test_reference_statistics_equal_clean_fid_statistics_and_fid(photo_folders, inception, tmp_path, monkeypatch):
    from cleanfid import fid as cleanfid_fid

    from palette.metrics.evaluate import evaluate_folders
    from palette.metrics.reference import files_digest, inception_weights_digest, reference_statistics

    # reference images already square at the image size: the target preprocessing keeps them
    photos = real_photos()
    rng = np.random.default_rng(5)
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    for index in range(10):
        photo = photos[("china", "flower", "chelsea", "astronaut", "rocket")[index % 5]]
        top, left = rng.integers(0, photo.shape[0] - 96), rng.integers(0, photo.shape[1] - 96)
        Image.fromarray(photo[top : top + 96, left : left + 96]).save(reference_dir / f"ref_{index:02d}.png")
    paths = sorted(reference_dir.iterdir())
    ours = reference_statistics(paths, image_size=96, name="unit_reference", model=inception, progress=False)
    assert ours.count == 10 and ours.name == "unit_reference"
    assert ours.files_digest == files_digest(paths) and ours.weights_digest == inception_weights_digest()

    extractor = EagerForCleanFid(inception)
    features = cleanfid_fid.get_folder_features(str(reference_dir), extractor, num_workers=0, batch_size=4,
                                                device=torch.device("cpu"), mode="clean", verbose=False)
    mu, sigma = np.mean(features, axis=0), np.cov(features, rowvar=False)
    np.testing.assert_allclose(ours.mu, mu, rtol=1e-6, atol=1e-6 * np.abs(mu).max())
    np.testing.assert_allclose(ours.sigma, sigma, rtol=1e-6, atol=1e-6 * np.abs(sigma).max())

    # FID of a sample folder against these statistics, ours and clean-fid's compute_fid
    stats_path = tmp_path / "unit_reference.npz"
    ours.save(stats_path)
    first, _ = photo_folders
    results = evaluate_folders(first, first, metrics="fid", device="cpu", reference_stats=stats_path,
                               progress=False)
    assert results["fid_reference"] == {"name": "unit_reference", "path": str(stats_path), "count": 10,
                                        "files_digest": ours.files_digest, "weights_digest": ours.weights_digest}

    def saved_statistics(*args, **kwargs):  # clean-fid's loader of stored reference statistics
        with np.load(stats_path) as data:
            return data["mu"], data["sigma"]

    monkeypatch.setattr(cleanfid_fid, "get_reference_statistics", saved_statistics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's deprecation of sqrtm(disp=...) inside clean-fid
        theirs = cleanfid_fid.compute_fid(str(first), dataset_name="unit_reference", dataset_split="custom",
                                          mode="clean", custom_feat_extractor=extractor, num_workers=0,
                                          batch_size=4, device=torch.device("cpu"), verbose=False,
                                          use_dataparallel=False)
    assert theirs > 10.0
    assert results["fid"] == pytest.approx(theirs, rel=1e-4)
