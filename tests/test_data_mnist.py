"""MNIST IDX files, the folder's splits and checksums, and images on the sphere (no network)."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from datasets import mnist_test_dir, needs_mnist

from ntkdepth.data import (MnistNotFoundError, available_splits, fetch_mnist, load_mnist,
    mnist_dir, mnist_on_sphere, read_idx, resolve_split, sample_on_sphere, verify_mnist)
from ntkdepth.data.mnist import MNIST_MD5

# The real test split where one is found (user data directory or ../shared/data).
REAL = mnist_test_dir()


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    big = array.astype(array.dtype.newbyteorder(">"))
    return struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + big.tobytes()


def write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = True):
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[split]
    suffix = ".gz" if gz else ""
    write(folder / (stems[0] + suffix), idx_bytes(images, 0x08), gz)
    write(folder / (stems[1] + suffix), idx_bytes(labels, 0x08), gz)


# -- the IDX format -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "array,code",
    [
        (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 5], dtype=np.int8), 0x09),
        (np.array([[-300, 7], [1, 2]], dtype=np.int16), 0x0B),
        (np.array([2**31 - 1, -(2**31)], dtype=np.int32), 0x0C),
        (np.array([[1.5, -2.25]], dtype=np.float32), 0x0D),
        (np.array([np.pi, -1e300], dtype=np.float64), 0x0E),
    ],
)
def test_read_idx_round_trips_every_type_gzipped_or_not(tmp_path, array, code, gz):
    path = write(tmp_path / "a.idx", idx_bytes(array, code), gz)
    got = read_idx(path)
    assert got.shape == array.shape and got.dtype == array.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_read_idx_hand_made_header(tmp_path):
    # magic 0x00000801 (uint8, one dimension), size 3, then the bytes 7 2 1.
    path = write(tmp_path / "labels", bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


@pytest.mark.parametrize(
    "payload,match",
    [
        (bytes([0, 0, 8]), "too short for an IDX header"),
        (bytes([1, 2, 8, 1, 0, 0, 0, 1, 5]), "bad IDX magic number 0x01020801"),
        (bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]), "bad IDX magic number 0x00000a01"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3]), "truncated: shape \\[4\\] of uint8 needs 4 data bytes, the file has 3"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]), "1 bytes beyond the data"),
        (bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + bytes(7), "needs 8 data bytes, the file has 7"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, payload, match):
    for gz in (False, True):
        path = write(tmp_path / f"bad{int(gz)}", payload, gz)
        with pytest.raises(ValueError, match=match):
            read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.uint8), 0x08))
    cut = write(tmp_path / "cut.gz", good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.gz: corrupt gzip data"):
        read_idx(cut)
    garbled = bytearray(good)
    garbled[20:40] = bytes(20)
    with pytest.raises(ValueError, match="corrupt gzip data"):
        read_idx(write(tmp_path / "garbled.gz", bytes(garbled)))
    with pytest.raises(FileNotFoundError, match="no IDX file"):
        read_idx(tmp_path / "absent")


# -- the folder -----------------------------------------------------------------------


def test_a_folder_with_one_split_loads_it_and_names_the_missing_one(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    labels = np.array([5, 0, 9], dtype=np.uint8)
    write_split(tmp_path, "test", images, labels, gz=False)
    assert available_splits(tmp_path) == ["test"]
    assert resolve_split(tmp_path, "auto") == "test"
    got_images, got_labels = load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(MnistNotFoundError, match=r"'train' split is missing .*train-images-idx3-ubyte\[\.gz\]"
                       r".*train-labels-idx1-ubyte\[\.gz\].*present there: \['test'\]"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown MNIST split 'validation'"):
        load_mnist(tmp_path, "validation")


def test_auto_prefers_the_training_split(tmp_path):
    write_split(tmp_path, "test", np.zeros((1, 2, 2), np.uint8), np.zeros(1, np.uint8))
    write_split(tmp_path, "train", np.ones((2, 2, 2), np.uint8), np.ones(2, np.uint8))
    assert available_splits(tmp_path) == ["train", "test"]
    images, _ = load_mnist(tmp_path, "auto")
    assert images.shape == (2, 2, 2)


def test_an_empty_folder_says_where_it_looked_and_how_to_fetch(tmp_path, monkeypatch):
    from ntkdepth.data import files

    monkeypatch.setattr(files, "shared_data_dir", lambda: tmp_path / "no-shared" / "data")
    monkeypatch.setenv("NTKDEPTH_DATA", str(tmp_path))
    assert mnist_dir() == tmp_path / "mnist" and mnist_dir("") == tmp_path / "mnist"
    assert mnist_dir(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(
        MnistNotFoundError,
        match=r"no MNIST split in .*mnist \(looked in .*mnist \(\$NTKDEPTH_DATA/mnist\) and the read-only "
        r"fallback .*no-shared/data/mnist: the folder does not exist\); download the official files with "
        r"`ntkdepth data fetch mnist`",
    ):
        load_mnist(split="auto")
    (tmp_path / "mnist").mkdir()
    with pytest.raises(MnistNotFoundError, match=r"it has neither train-images-idx3-ubyte"):
        load_mnist(split="auto")
    with pytest.raises(MnistNotFoundError, match=r"'test' split is missing .*present there: none"):
        load_mnist(split="test")


def test_the_user_folder_comes_first_and_shared_data_is_the_fallback(tmp_path, monkeypatch):
    from ntkdepth.data import files

    shared = tmp_path / "shared" / "data"
    monkeypatch.setattr(files, "shared_data_dir", lambda: shared)
    monkeypatch.setenv("NTKDEPTH_DATA", str(tmp_path / "home"))
    assert files.data_roots() == [tmp_path / "home", shared]
    assert mnist_dir() == tmp_path / "home" / "mnist"  # nothing anywhere: where fetch writes
    (shared / "mnist").mkdir(parents=True)
    write_split(shared / "mnist", "test", np.zeros((1, 2, 2), np.uint8), np.zeros(1, np.uint8))
    assert mnist_dir() == shared / "mnist"  # the fallback holds a split
    (tmp_path / "home" / "mnist").mkdir(parents=True)
    write_split(tmp_path / "home" / "mnist", "test", np.ones((2, 2, 2), np.uint8), np.ones(2, np.uint8))
    assert mnist_dir() == tmp_path / "home" / "mnist"  # the user's own copy wins
    assert load_mnist(split="test")[0].shape == (2, 2, 2)


def test_image_and_label_counts_must_match(tmp_path):
    write_split(tmp_path, "test", np.zeros((3, 2, 2), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_mnist(tmp_path, "test")


def test_labels_must_be_digits_and_images_three_dimensional(tmp_path):
    write_split(tmp_path, "test", np.zeros((2, 2, 2), np.uint8), np.array([3, 12], np.uint8))
    with pytest.raises(ValueError, match="label 12 at index 1 is not a digit"):
        load_mnist(tmp_path, "test")
    write_split(tmp_path, "test", np.zeros((2, 4), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 images \[n, rows, cols\]"):
        load_mnist(tmp_path, "test")


def test_verify_names_a_file_with_the_wrong_checksum(tmp_path):
    write_split(tmp_path, "test", np.zeros((1, 2, 2), np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: MD5 .* differs from the official"):
        verify_mnist(tmp_path, "test")
    with pytest.raises(MnistNotFoundError):
        verify_mnist(tmp_path, "train")


def test_fetch_tries_mirrors_and_refuses_a_wrong_checksum(tmp_path):
    # A local "mirror" (file:// URL): no network.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_split(mirror, "test", np.zeros((1, 2, 2), np.uint8), np.zeros(1, np.uint8))
    with pytest.raises(OSError, match="could not fetch t10k-images-idx3-ubyte.gz: .*MD5 .*expected"):
        fetch_mnist(tmp_path / "out", ["test"], mirrors=[mirror.as_uri() + "/"], progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written is left, not even the folder


@needs_mnist
def test_fetch_copies_and_verifies_the_official_files_from_a_local_mirror(tmp_path):
    missing = (tmp_path / "nowhere").as_uri()
    paths = fetch_mnist(tmp_path / "out", ["test"], mirrors=[missing, REAL.as_uri()], progress=False)
    assert [p.name for p in paths] == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert verify_mnist(tmp_path / "out", "test") == {p.name: MNIST_MD5[p.name] for p in paths}


# -- the real test split --------------------------------------------------------------


@needs_mnist
def test_shared_test_split_has_the_official_checksums_and_shape():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert hashlib.md5((REAL / name).read_bytes()).hexdigest() == MNIST_MD5[name]
    images, labels = load_mnist(REAL, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[:5], [7, 2, 1, 0, 4])
    np.testing.assert_array_equal(np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert images.max() == 255 and images.min() == 0


# -- on the sphere --------------------------------------------------------------------


def test_images_on_the_sphere_are_unit_vectors_in_their_directions(rng):
    images = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    x = mnist_on_sphere(images)
    assert x.shape == (5, 784) and x.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-15)
    flat = images.reshape(5, -1).astype(float)
    np.testing.assert_allclose(x * np.linalg.norm(flat, axis=1, keepdims=True), flat, rtol=1e-13)


def test_an_all_zero_image_is_named():
    images = np.ones((4, 3, 3), np.uint8)
    images[2] = 0
    with pytest.raises(ValueError, match="image 2 is all zero"):
        mnist_on_sphere(images)


def test_sampling_is_without_replacement_seeded_and_refuses_duplicates(rng):
    images = rng.integers(0, 256, size=(50, 4, 4)).astype(np.uint8)
    labels = np.arange(50) % 10
    s = sample_on_sphere(3, images, labels, 50)
    assert sorted(s.indices) == list(range(50))  # every image once
    np.testing.assert_array_equal(s.labels, labels[s.indices])
    np.testing.assert_allclose(s.x, mnist_on_sphere(images[s.indices]))
    again = sample_on_sphere(np.random.default_rng(3), images, labels, 20)
    np.testing.assert_array_equal(again.indices, sample_on_sphere(3, images, labels, 20).indices)
    assert s.min_angle > 1e-6
    doubled = images.copy()
    doubled[7] = doubled[31] // 2 * 2
    doubled[31] = doubled[7] // 2  # image 7 is exactly twice image 31: colinear
    with pytest.raises(ValueError, match="images (7 and 31|31 and 7) of the dataset are colinear"):
        sample_on_sphere(0, doubled, labels, 50)
    with pytest.raises(ValueError, match="2 <= n <= 50"):
        sample_on_sphere(0, images, labels, 51)
    with pytest.raises(ValueError, match="labels must be"):
        sample_on_sphere(0, images, labels[:10], 5)


@needs_mnist
def test_mnist_samples_are_well_separated():
    images, labels = load_mnist(REAL, "test")
    s = sample_on_sphere(0, images, labels, 500)
    assert len(set(s.indices.tolist())) == 500
    assert 0.1 < s.min_angle < 1.0
    # Pixels are non-negative: every pair of images has correlation in [0, 1).
    g = s.x @ s.x.T
    assert g.min() >= 0 and np.max(g - 2 * np.eye(500)) < 1
