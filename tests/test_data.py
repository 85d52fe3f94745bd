"""growcore.data: the digits split, the IDX reader, the MNIST loaders and their errors."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from growcore import InvalidArgumentError
from growcore.data import DIGITS_TEST_FRACTION, Dataset, load_dataset, load_mnist, read_idx

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("GROWCORE_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist-t10k"))

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic (0, 0, type, ndim), big-endian uint32 dims, data."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, _CODES[big.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(big).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images.astype(np.uint8), gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8), gz)


def numbered_images(n: int, h: int = 3, w: int = 2) -> np.ndarray:
    """Image i is filled with the value i, so every image can be traced through a split."""
    return np.repeat(np.arange(n, dtype=np.uint8), h * w).reshape(n, h, w)


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits(return_X_y=True)


def test_digits_shapes_dtypes_ranges(sklearn_digits):
    x_all, _ = sklearn_digits
    d = load_dataset("digits")
    n_test = int(np.ceil(DIGITS_TEST_FRACTION * len(x_all)))
    assert d.name == "digits" and d.num_classes == 10 and d.num_features == 64
    assert d.x_train.shape == (len(x_all) - n_test, 64) and d.x_test.shape == (n_test, 64)
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32
    assert d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    for x in (d.x_train, d.x_test):
        assert x.min() == 0.0 and x.max() == 1.0  # 16/16: pixels divided by 16, not 255
    assert set(d.y_train.tolist()) == set(range(10)) == set(d.y_test.tolist())


def test_digits_split_is_a_stratified_partition_of_the_whole_set(sklearn_digits):
    x_all, y_all = sklearn_digits
    d = load_dataset("digits", seed=3)
    # Train + test hold every (image, label) exactly once.
    got = np.concatenate([np.column_stack([d.x_train, d.y_train]), np.column_stack([d.x_test, d.y_test])])
    want = np.column_stack([(x_all / 16).astype(np.float32), y_all])
    assert np.array_equal(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])])
    # Stratified: every class is held out in the same proportion, up to rounding.
    per_class = np.bincount(y_all, minlength=10)
    held_out = np.bincount(d.y_test, minlength=10)
    assert np.all(np.abs(held_out - DIGITS_TEST_FRACTION * per_class) <= 1), held_out


def test_digits_split_is_deterministic_per_seed(sklearn_digits):
    a, b, c = load_dataset("digits", seed=7), load_dataset("digits", seed=7), load_dataset("digits", seed=8)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_test, c.x_test)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"scikit-learn.*growcore\[run\]"):
        load_dataset("digits")


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array",
    [
        numbered_images(5),
        np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        np.array([[-2, 300], [7, -32768]], dtype=">i2"),
        np.array([1.5, -0.25, 3e38], dtype=">f4"),
        np.arange(24, dtype=">i4").reshape(2, 3, 4) - 10**6,
        np.array([-1e300, 2.5], dtype=">f8"),
        np.array([-128, 127], dtype="i1"),
    ],
    ids=["u1-3d", "u1-1d", "i2", "f4", "i4-3d", "f8", "i1"],
)
def test_read_idx_round_trip(tmp_path, array, gz):
    got = read_idx(write_idx(tmp_path / "x.idx", array, gz))
    assert got.shape == array.shape
    assert got.dtype == array.dtype.newbyteorder("=")
    assert np.array_equal(got, array)
    assert got.flags.writeable


def test_read_idx_empty_dimension(tmp_path):
    got = read_idx(write_idx(tmp_path / "x.idx", np.zeros((0, 4), dtype=np.uint8), gz=False))
    assert got.shape == (0, 4)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_corrupt_magic(tmp_path, gz):
    data = bytearray(idx_bytes(numbered_images(2)))
    data[0] = 0x12
    path = tmp_path / "bad-magic"
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    with pytest.raises(InvalidArgumentError, match=r"bad-magic.*bad magic number 0x12000803"):
        read_idx(path)


@pytest.mark.parametrize(
    "magic", [b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"\x00\x01\x08\x01"], ids=["type", "ndim0", "byte1"]
)
def test_read_idx_rejects_every_bad_magic_field(tmp_path, magic):
    path = tmp_path / "f"
    path.write_bytes(magic + (1).to_bytes(4, "big") + b"\x05")
    with pytest.raises(InvalidArgumentError, match="bad magic number"):
        read_idx(path)


def test_read_idx_too_short_for_magic(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(InvalidArgumentError, match=r"tiny.*2 bytes, shorter than the 4-byte magic"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(idx_bytes(numbered_images(2))[:9])  # 3 dims need a 16-byte header
    with pytest.raises(InvalidArgumentError, match=r"hdr.*truncated.*16-byte header.*9 bytes"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_data(tmp_path, gz):
    path = tmp_path / "short"
    data = idx_bytes(numbered_images(4))[:-1]
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(InvalidArgumentError, match=r"short.*truncated.*\(4, 3, 2\).*need 24 data bytes, found 23"):
        read_idx(path)


def test_read_idx_trailing_data(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(numbered_images(4)) + b"\x00")
    with pytest.raises(InvalidArgumentError, match=r"long.*longer than its header says.*found 25"):
        read_idx(path)


def test_read_idx_damaged_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(numbered_images(50)))[:-6])
    with pytest.raises(InvalidArgumentError, match=r"cut\.gz.*damaged gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


# ---------------------------------------------------------------- MNIST folders


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_train_and_t10k_are_used_as_published(tmp_path, gz):
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 256, (7, 28, 28))
    ytrain, ytest = rng.integers(0, 10, 12), rng.integers(0, 10, 7)
    write_mnist(tmp_path, "train", train, ytrain, gz)
    write_mnist(tmp_path, "t10k", test, ytest, gz)
    d = load_dataset(f"mnist:{tmp_path}", seed=5)
    assert d.name == "mnist" and d.num_classes == 10 and d.num_features == 784
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.x_train, (train.reshape(12, 784) / 255).astype(np.float32))
    np.testing.assert_array_equal(d.x_test, (test.reshape(7, 784) / 255).astype(np.float32))
    np.testing.assert_array_equal(d.y_train, ytrain)
    np.testing.assert_array_equal(d.y_test, ytest)


def test_mnist_t10k_only_uses_the_canonical_split(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(10), np.arange(10) % 10)
    d = load_mnist(tmp_path)
    # Image i holds the value i/255 everywhere: recover which indices landed where.
    assert (d.x_test[:, 0] * 255).round().astype(int).tolist() == [4, 9]
    assert (d.x_train[:, 0] * 255).round().astype(int).tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    assert d.y_test.tolist() == [4, 9] and d.y_train.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    assert d.x_train.shape == (8, 6) and np.all(d.x_train.max(axis=1) == d.x_train.min(axis=1))


def test_mnist_plain_file_wins_over_gz(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(5), gz=False)
    write_mnist(tmp_path, "t10k", numbered_images(5) + 100, np.ones(5), gz=True)
    d = load_mnist(str(tmp_path))
    assert d.y_train.tolist() == [0, 0, 0, 0] and d.x_train[0, 0] == 0.0


def test_mnist_missing_folder(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError, match=r"no-such-folder.*does not exist.*t10k-images-idx3-ubyte"):
        load_dataset(f"mnist:{missing}")


def test_mnist_folder_of_an_unknown_user_is_a_missing_folder():
    # Path.expanduser() raises RuntimeError for "~user" when there is no such user.
    with pytest.raises(FileNotFoundError, match=r"MNIST folder '~no-such-user-growcore/mnist' does not exist"):
        load_dataset("mnist:~no-such-user-growcore/mnist")


def test_mnist_folder_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        load_mnist(tmp_path / "f")


def test_mnist_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no t10k-images-idx3-ubyte\[\.gz\] and t10k-labels"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("prefix", ["train", "t10k"])
@pytest.mark.parametrize("drop", ["images-idx3", "labels-idx1"])
def test_mnist_half_pair_is_an_error(tmp_path, prefix, drop):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(5))
    write_mnist(tmp_path, "train", numbered_images(5), np.zeros(5))
    (tmp_path / f"{prefix}-{drop}-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=rf"but no {prefix}-{drop}-ubyte\[\.gz\]"):
        load_mnist(tmp_path)


def test_mnist_images_and_labels_disagree_on_count(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(4))
    with pytest.raises(InvalidArgumentError, match=r"holds 5 images but .*t10k-labels-idx1-ubyte\.gz' holds 4"):
        load_mnist(tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.array([0, 1, 10, 2, 3]))
    with pytest.raises(InvalidArgumentError, match=r"labels-idx1-ubyte\.gz' has label 10 at index 2"):
        load_mnist(tmp_path)


def test_mnist_files_swapped_kinds(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros(5, dtype=np.uint8), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8), gz=False)
    with pytest.raises(InvalidArgumentError, match=r"t10k-images-idx3-ubyte' is not an MNIST image file.*0x00000803"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", numbered_images(5), gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=">i4"), gz=False)
    with pytest.raises(InvalidArgumentError, match=r"t10k-labels-idx1-ubyte' is not an MNIST label file.*int32"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("kind, ndim_byte", [("images-idx3", 4), ("images-idx3", 2), ("labels-idx1", 2)])
def test_mnist_changed_dimension_count_is_the_wrong_kind_not_a_size_error(tmp_path, kind, ndim_byte):
    # The magic number is checked before the sizes it announces: a changed dimension-count byte
    # makes the file another kind of IDX file, not one "longer than its header says".
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(5), gz=False)
    path = tmp_path / f"t10k-{kind}-ubyte"
    raw = bytearray(path.read_bytes())
    raw[3] = ndim_byte
    path.write_bytes(bytes(raw))
    what = "image" if kind.startswith("images") else "label"
    with pytest.raises(InvalidArgumentError, match=rf"{kind}-ubyte' is not an MNIST {what} file.*0x0000080{ndim_byte}") as info:
        load_mnist(tmp_path)
    assert "header" not in str(info.value) and "truncated" not in str(info.value)


@pytest.mark.parametrize(
    "prefix, images, message",
    [
        ("t10k", np.zeros((0, 28, 28)), r"t10k-images-idx3-ubyte\.gz' holds 0 images"),
        ("train", np.zeros((0, 3, 2)), r"train-images-idx3-ubyte\.gz' holds 0 images"),
        ("t10k", np.zeros((5, 0, 0)), r"t10k-images-idx3-ubyte\.gz' holds images of 0x0 pixels"),
        ("t10k", np.zeros((5, 28, 0)), r"t10k-images-idx3-ubyte\.gz' holds images of 28x0 pixels"),
    ],
)
def test_mnist_no_images_or_no_pixels(tmp_path, prefix, images, message):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(5))
    write_mnist(tmp_path, prefix, images, np.zeros(len(images)))
    with pytest.raises(InvalidArgumentError, match=message):
        load_mnist(tmp_path)


@pytest.mark.parametrize("n", [1, 4])
def test_mnist_t10k_too_small_for_the_canonical_split(tmp_path, n):
    write_mnist(tmp_path, "t10k", numbered_images(n), np.zeros(n))
    with pytest.raises(InvalidArgumentError, match=rf"{re.escape(str(tmp_path))}'.*holds {n} images; the canonical split .* at least 5"):
        load_mnist(tmp_path)
    # With a train-* pair the t10k files are the test set as they are: a single image is enough.
    write_mnist(tmp_path, "train", numbered_images(3), np.zeros(3))
    assert load_mnist(tmp_path).x_test.shape == (n, 6)


def test_mnist_train_and_test_image_sizes_differ(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(5, 4, 4), np.zeros(5))
    write_mnist(tmp_path, "train", numbered_images(5, 3, 3), np.zeros(5))
    with pytest.raises(InvalidArgumentError, match="has 9 pixels per image but .* has 16"):
        load_mnist(tmp_path)


def test_mnist_corrupt_file_through_load_dataset(tmp_path):
    write_mnist(tmp_path, "t10k", numbered_images(5), np.zeros(5), gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(InvalidArgumentError, match=r"t10k-images-idx3-ubyte' is truncated"):
        load_dataset(f"mnist:{tmp_path}")


# ---------------------------------------------------------------- spec and Dataset errors


@pytest.mark.parametrize("spec", ["cifar10", "", "digits:extra", "Digits", "mnist"])
def test_unknown_or_incomplete_spec(spec):
    with pytest.raises(InvalidArgumentError, match=r"spec=") as info:
        load_dataset(spec)
    assert repr(spec) in str(info.value)


def test_spec_and_seed_types():
    with pytest.raises(TypeError, match="spec must be a str, got int 3"):
        load_dataset(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seed must be an int, got bool True"):
        load_dataset("digits", seed=True)
    with pytest.raises(InvalidArgumentError, match=r"seed must be in \[0, 2\*\*32\), got -1"):
        load_dataset("digits", seed=-1)


def _small(**overrides):
    fields = dict(
        name="t",
        x_train=np.zeros((3, 2), np.float32),
        y_train=np.array([0, 1, 2]),
        x_test=np.zeros((1, 2), np.float32),
        y_test=np.array([1]),
        num_classes=3,
    )
    fields.update(overrides)
    return Dataset(**fields)


def test_dataset_accepts_consistent_arrays():
    assert _small().num_features == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"x_train": np.zeros((3, 2))}, "x_train must be a 2-d float32 numpy array, got ndarray of dtype float64"),
        ({"y_test": np.array([1.0])}, "y_test must be a 1-d int64 numpy array"),
        ({"y_train": np.array([0, 1])}, "x_train has 3 rows but y_train has 2 labels"),
        ({"x_test": np.zeros((1, 5), np.float32)}, "x_train has 2 features but x_test has 5"),
        ({"num_classes": 0}, "num_classes must be a positive int, got 0"),
        ({"y_train": np.array([0, 3, 1])}, r"y_train has labels in \[0, 3\], outside 0..2"),
        ({"x_test": np.zeros((0, 2), np.float32), "y_test": np.zeros(0, np.int64)}, "x_test has 0 rows: the test split is empty"),
        ({"x_train": np.zeros((0, 2), np.float32), "y_train": np.zeros(0, np.int64)}, "x_train has 0 rows: the train split is empty"),
        ({"x_train": np.zeros((3, 0), np.float32), "x_test": np.zeros((1, 0), np.float32)}, "x_train has 0 features"),
    ],
)
def test_dataset_rejects_inconsistent_arrays(overrides, message):
    with pytest.raises(InvalidArgumentError, match=message):
        _small(**overrides)


# ---------------------------------------------------------------- the shared MNIST test set


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no MNIST t10k files at {MNIST_DIR} (GROWCORE_MNIST_DIR)")
def test_shared_mnist_t10k():
    for line in (MNIST_DIR / "MD5SUMS").read_text().split("\n"):
        if line.strip():
            digest, name = line.split()
            assert hashlib.md5((MNIST_DIR / name).read_bytes()).hexdigest() == digest, name
    d = load_dataset(f"mnist:{MNIST_DIR}")
    assert d.x_train.shape == (8000, 784) and d.x_test.shape == (2000, 784)
    assert d.x_train.dtype == np.float32 and 0.0 == d.x_train.min() and d.x_train.max() == 1.0
    # The published class counts of the MNIST test set, split 8,000 / 2,000 by i % 5 == 4.
    both = np.bincount(np.concatenate([d.y_train, d.y_test]), minlength=10)
    assert both.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    labels = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert np.array_equal(d.y_test, labels[4::5]) and np.array_equal(d.y_train[:4], labels[:4])
