"""Data sets for ``growcore run``: small, in-memory, numpy only (no torch).

:func:`load_dataset` turns a spec string into a :class:`Dataset`:

- ``"digits"``: scikit-learn's 8x8 digits (1,797 images, installs with scikit-learn), pixels
  divided by 16, split into train and test by a stratified split of :data:`DIGITS_TEST_FRACTION`
  that depends only on ``seed``.
- ``"mnist:DIR"``: MNIST-format IDX files in ``DIR``, pixels divided by 255 and flattened. With
  ``train-*`` and ``t10k-*`` files the two are train and test. With only the ``t10k-*`` files
  (the official test set, as in ``../shared/data/mnist-t10k``) the project's canonical split is
  used: images whose index ``i`` has ``i % 5 == 4`` are the test set, all others the training set.

A missing folder or file raises :class:`FileNotFoundError` naming the path and what was expected;
an unknown spec, a bad seed, or a corrupt or inconsistent file raises
:class:`growcore.errors.InvalidArgumentError` (a ``ValueError``) naming the argument or the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from growcore.errors import InvalidArgumentError

#: Fraction of the digits data set held out as the test set (stratified by class).
DIGITS_TEST_FRACTION = 0.2

#: Number of MNIST classes; labels outside ``0..9`` are reported as a corrupt file.
MNIST_CLASSES = 10

# IDX type codes (third byte of the magic number) and the big-endian dtypes they denote.
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
# Magic numbers of the two MNIST file kinds: type 0x08 (unsigned byte), 3 or 1 dimensions.
_MNIST_IMAGES_MAGIC = 0x00000803
_MNIST_LABELS_MAGIC = 0x00000801

_SPEC_HELP = "expected 'digits' or 'mnist:DIR' (a folder of MNIST IDX files)"


@dataclass(frozen=True)
class Dataset:
    """A classification data set held in memory, ready to be turned into tensors.

    ``x_train``/``x_test`` are float32 arrays of shape ``(n, num_features)`` with values in
    ``[0, 1]``; ``y_train``/``y_test`` are int64 class indices in ``0..num_classes-1``.
    """

    name: str
    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    num_classes: int

    def __post_init__(self) -> None:
        # A Dataset built by hand (e.g. a tiny subset in a test) gets the same guarantees as one
        # from load_dataset, so the training code never has to re-check shapes.
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
                raise InvalidArgumentError(
                    f"x_{split} must be a 2-d float32 numpy array, got {_describe(x)}"
                )
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
                raise InvalidArgumentError(
                    f"y_{split} must be a 1-d int64 numpy array, got {_describe(y)}"
                )
            if x.shape[0] != y.shape[0]:
                raise InvalidArgumentError(
                    f"x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]} labels"
                )
            if x.shape[0] == 0:
                raise InvalidArgumentError(f"x_{split} has 0 rows: the {split} split is empty")
        if self.x_train.shape[1] == 0:
            raise InvalidArgumentError("x_train has 0 features (columns); expected at least one")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise InvalidArgumentError(
                f"x_train has {self.x_train.shape[1]} features but x_test has "
                f"{self.x_test.shape[1]}"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or (
            self.num_classes < 1
        ):
            raise InvalidArgumentError(
                f"num_classes must be a positive int, got {self.num_classes!r}"
            )
        for split in ("train", "test"):
            y = getattr(self, f"y_{split}")
            if y.size and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise InvalidArgumentError(
                    f"y_{split} has labels in [{int(y.min())}, {int(y.max())}], outside "
                    f"0..{self.num_classes - 1} (num_classes={self.num_classes})"
                )

    @property
    def num_features(self) -> int:
        """Number of input features (columns of ``x_train``)."""
        return int(self.x_train.shape[1])


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """Load the data set named by ``spec`` (``"digits"`` or ``"mnist:DIR"``).

    ``seed`` selects the digits train/test split (the same seed always gives the same split); the
    MNIST split is fixed by the files, so ``seed`` does not affect it. See the module docstring
    for the exact rules and the errors raised.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str, got {type(spec).__name__} {spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= int(seed) < 2**32:
        raise InvalidArgumentError(f"seed must be in [0, 2**32), got {seed}")
    name, sep, arg = spec.partition(":")
    if name == "digits" and not sep:
        return _load_digits(int(seed))
    if name == "mnist":
        if not arg:
            raise InvalidArgumentError(
                f"spec={spec!r} names no folder: use 'mnist:DIR' with DIR holding the IDX files"
            )
        return load_mnist(arg)
    raise InvalidArgumentError(f"unknown data set spec={spec!r}: {_SPEC_HELP}")


def _load_digits(seed: int) -> Dataset:
    try:
        from sklearn.datasets import load_digits  # type: ignore[import-untyped]
        from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ImportError(
            "the 'digits' data set needs scikit-learn: pip install 'growcore[run]' "
            "(or pip install scikit-learn)"
        ) from exc
    x, y = load_digits(return_X_y=True)
    x = (np.asarray(x, dtype=np.float32) / np.float32(16.0)).astype(np.float32)
    y = np.asarray(y, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y
    )
    return Dataset(
        name="digits",
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(y_test),
        num_classes=10,
    )


def load_mnist(folder: str | os.PathLike[str]) -> Dataset:
    """Load MNIST-format IDX files (gzip or plain) from ``folder``.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either plain or with a
    ``.gz`` suffix (the plain file wins when both exist). Both pairs present: train and test as
    published. Only the ``t10k`` pair: the canonical split (test = indices ``i % 5 == 4``).
    A half pair (images without labels or the reverse) is an error, never silently skipped, and
    so is a file of 0 images or of images with 0 pixels, or a t10k-only set of fewer than 5
    images (its canonical test split would be empty).
    """
    path = Path(folder)
    try:
        path = path.expanduser()
    except RuntimeError:  # "~user" of an unknown user, or "~" without a home: no such folder
        exists = False
    else:
        exists = path.exists()
    if not exists:
        raise FileNotFoundError(
            f"MNIST folder {str(path)!r} does not exist; expected a folder holding "
            "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] "
            "(and optionally the train-* pair)"
        )
    if not path.is_dir():
        raise NotADirectoryError(f"MNIST folder {str(path)!r} is not a folder")

    test_pair = _find_pair(path, "t10k")
    train_pair = _find_pair(path, "train")
    if test_pair is None:
        raise FileNotFoundError(
            f"MNIST folder {str(path)!r} has no t10k-images-idx3-ubyte[.gz] and "
            "t10k-labels-idx1-ubyte[.gz]; at least the t10k pair is required"
        )
    x_t10k, y_t10k = _read_mnist_pair(*test_pair)
    if train_pair is not None:
        x_train, y_train = _read_mnist_pair(*train_pair)
        if x_train.shape[1] != x_t10k.shape[1]:
            raise InvalidArgumentError(
                f"{str(train_pair[0])!r} has {x_train.shape[1]} pixels per image but "
                f"{str(test_pair[0])!r} has {x_t10k.shape[1]}"
            )
        x_test, y_test = x_t10k, y_t10k
    else:
        # The project's canonical split of the 10k test set (../shared/data/README.md).
        if x_t10k.shape[0] < 5:
            raise InvalidArgumentError(
                f"MNIST folder {str(path)!r}: {str(test_pair[0])!r} holds {x_t10k.shape[0]} "
                "images; the canonical split (test = every 5th image) needs at least 5, or add "
                "the train-* pair"
            )
        test = np.arange(x_t10k.shape[0]) % 5 == 4
        x_train, y_train = x_t10k[~test], y_t10k[~test]
        x_test, y_test = x_t10k[test], y_t10k[test]
    return Dataset(
        name="mnist",
        x_train=np.ascontiguousarray(x_train),
        y_train=np.ascontiguousarray(y_train),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.ascontiguousarray(y_test),
        num_classes=MNIST_CLASSES,
    )


def _find_pair(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    """The (images, labels) files for ``prefix``, None if neither exists, an error if one does."""
    images = _find_file(folder, f"{prefix}-images-idx3-ubyte")
    labels = _find_file(folder, f"{prefix}-labels-idx1-ubyte")
    if images is not None and labels is None:
        raise _half_pair(folder, images, f"{prefix}-labels-idx1-ubyte")
    if labels is not None and images is None:
        raise _half_pair(folder, labels, f"{prefix}-images-idx3-ubyte")
    if images is None or labels is None:
        return None
    return images, labels


def _half_pair(folder: Path, have: Path, missing: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"MNIST folder {str(folder)!r} has {have.name!r} but no {missing}[.gz] to go with it"
    )


def _find_file(folder: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _read_mnist_pair(
    images_path: Path, labels_path: Path
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    # The magic number is checked before the sizes, so that a file of another kind (or with a
    # changed dimension count) is named as such, not as "truncated" or "longer than its header".
    images = _read_idx(images_path, _MNIST_IMAGES_MAGIC, "MNIST image file")
    labels = _read_idx(labels_path, _MNIST_LABELS_MAGIC, "MNIST label file")
    if images.shape[0] != labels.shape[0]:
        raise InvalidArgumentError(
            f"{str(images_path)!r} holds {images.shape[0]} images but {str(labels_path)!r} "
            f"holds {labels.shape[0]} labels"
        )
    if images.shape[0] == 0:
        raise InvalidArgumentError(f"{str(images_path)!r} holds 0 images; expected at least one")
    if images.shape[1] * images.shape[2] == 0:
        raise InvalidArgumentError(
            f"{str(images_path)!r} holds images of {images.shape[1]}x{images.shape[2]} pixels; "
            "expected at least one pixel per image"
        )
    if int(labels.max()) >= MNIST_CLASSES:
        bad = int(np.argmax(labels >= MNIST_CLASSES))
        raise InvalidArgumentError(
            f"{str(labels_path)!r} has label {int(labels[bad])} at index {bad}; MNIST labels "
            f"are 0..{MNIST_CLASSES - 1}"
        )
    x = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False), labels.astype(np.int64)


def read_idx(path: str | os.PathLike[str]) -> NDArray[Any]:
    """Read one IDX file (plain or gzip, detected from its first bytes) into a numpy array.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follows in C order. The file must hold exactly as many bytes as the header
    announces: a bad magic number, a short header, truncated or trailing data, or a damaged gzip
    stream raises :class:`InvalidArgumentError` naming the file. Multi-byte types are returned
    in native byte order.
    """
    return _read_idx(Path(path), None, "")


def _read_idx(p: Path, magic_expected: int | None, kind: str) -> NDArray[Any]:
    """:func:`read_idx`; with ``magic_expected``, a file with another magic number is refused as
    not being a ``kind`` before its sizes are looked at."""
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise InvalidArgumentError(
            f"{str(p)!r} is not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number"
        )
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if magic_expected is not None and magic != magic_expected:
        want = magic_expected & 0xFF
        got = (
            f"{np.dtype(_IDX_DTYPES[code]).name} with {ndim} dimensions"
            if raw[0] == 0 and raw[1] == 0 and code in _IDX_DTYPES
            else "not an IDX type"
        )
        raise InvalidArgumentError(
            f"{str(p)!r} is not an {kind}: expected magic 0x{magic_expected:08x} (unsigned "
            f"bytes, {want} dimension{'s' if want != 1 else ''}), got 0x{magic:08x} ({got})"
        )
    if raw[0] != 0 or raw[1] != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise InvalidArgumentError(
            f"{str(p)!r} is not an IDX file: bad magic number 0x{magic:08x} (expected "
            "0x0000TTNN with type TT in 08,09,0b,0c,0d,0e and NN >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidArgumentError(
            f"{str(p)!r} is truncated: its magic number announces {ndim} dimensions, which need "
            f"a {header}-byte header, but the file has {len(raw)} bytes"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise InvalidArgumentError(
            f"{str(p)!r} is {what}: dimensions {dims} of {dtype.name} need {expected} data "
            f"bytes, found {found}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist") from None
    if raw[:2] != b"\x1f\x8b":  # not gzip: a plain IDX file
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidArgumentError(f"{str(path)!r} is a damaged gzip file: {exc}") from None


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray of dtype {value.dtype} and shape {value.shape}"
    return type(value).__name__


__all__ = [
    "DIGITS_TEST_FRACTION",
    "MNIST_CLASSES",
    "Dataset",
    "load_dataset",
    "load_mnist",
    "read_idx",
]
