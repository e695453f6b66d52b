"""The data home, downloads that leave nothing behind on failure, and `ntkdepth data`."""

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ntkdepth.cli import main
from ntkdepth.data import files, mnist, text8


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty user data directory (not yet created) and no ../shared fallback."""
    monkeypatch.setattr(files, "shared_data_dir", lambda: tmp_path / "shared" / "data")
    monkeypatch.setenv("NTKDEPTH_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


def _nothing_written(tmp_path):
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == []


def test_user_data_dir_follows_the_environment_and_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("NTKDEPTH_DATA", "~/somewhere")
    assert files.user_data_dir() == Path.home() / "somewhere"
    monkeypatch.delenv("NTKDEPTH_DATA")
    monkeypatch.setattr(files.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert files.user_data_dir() == tmp_path / "xdg" / "ntkdepth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert files.user_data_dir() == Path.home() / ".cache" / "ntkdepth"
    monkeypatch.setattr(files.sys, "platform", "darwin")
    assert files.user_data_dir() == Path.home() / "Library" / "Caches" / "ntkdepth"
    monkeypatch.setattr(files.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert files.user_data_dir() == tmp_path / "local" / "ntkdepth" / "Cache"
    assert files.shared_data_dir() == Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _fake_mnist(folder: Path, monkeypatch) -> dict[str, bytes]:
    """Small gzipped test-split files served from ``folder``, declared official for the test."""
    folder.mkdir(parents=True)
    contents = {
        "t10k-images-idx3-ubyte.gz": gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4])),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7])),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        monkeypatch.setitem(mnist.MNIST_MD5, name, hashlib.md5(data).hexdigest())
    return contents


def test_fetch_mnist_writes_into_the_user_data_directory_with_a_progress_bar(home, tmp_path, monkeypatch, capsys):
    served = _fake_mnist(tmp_path / "mirror", monkeypatch)
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ((tmp_path / "down").as_uri(), (tmp_path / "mirror").as_uri()))
    assert main(["data", "fetch", "mnist", "--splits", "test"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(home / "mnist" / n) for n in served]
    assert "t10k-images-idx3-ubyte.gz" in err and "fetched" in err
    assert sorted(p.name for p in (home / "mnist").iterdir()) == sorted(served)  # no temporary file left
    images, labels = mnist.load_mnist(split="test")
    assert images.tolist() == [[[1, 2], [3, 4]]] and labels.tolist() == [7]
    assert not (tmp_path / "shared").exists()


def test_a_failed_fetch_writes_nothing_anywhere(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mnist, "MNIST_MIRRORS", ((tmp_path / "no-network").as_uri(),))
    assert main(["data", "fetch", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "could not fetch train-images-idx3-ubyte.gz" in err and "nothing was written" in err
    assert _nothing_written(tmp_path)  # neither home/ nor ../shared/data/mnist


def test_a_fetch_failing_on_a_later_file_removes_the_earlier_ones(home, tmp_path, monkeypatch):
    served = _fake_mnist(tmp_path / "mirror", monkeypatch)
    (tmp_path / "mirror" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(OSError, match="could not fetch t10k-labels-idx1-ubyte.gz"):
        mnist.fetch_mnist(splits=["test"], mirrors=[(tmp_path / "mirror").as_uri()], progress=False)
    assert not home.exists()
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == ["t10k-images-idx3-ubyte.gz"]
    assert served


def test_an_interrupted_download_leaves_the_target_untouched(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        headers = {"Content-Length": "100"}

        def read(self, n=-1):
            if self.tell() >= 10:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(files.urllib.request, "urlopen", lambda url, timeout: Broken(bytes(100)))
    target = tmp_path / "file.gz"
    target.write_bytes(b"previous")
    with pytest.raises(OSError, match="http://example.invalid/file.gz: download interrupted"):
        files.download("http://example.invalid/file.gz", target, "0" * 32, progress=False)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.gz"]


def test_fetch_text8_checks_the_md5_and_lands_where_the_reader_looks(home, tmp_path, monkeypatch, capsys):
    zipped = tmp_path / "served" / "text8.zip"
    zipped.parent.mkdir()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("text8", " the cat sat on the mat")
    monkeypatch.setattr(text8, "TEXT8_URL", zipped.as_uri())
    with pytest.raises(OSError, match="could not fetch text8.zip: .*MD5 .*expected"):
        text8.fetch_text8(url=zipped.as_uri(), progress=False)
    assert not home.exists()
    monkeypatch.setattr(text8, "TEXT8_MD5", hashlib.md5(zipped.read_bytes()).hexdigest())
    assert main(["data", "fetch", "text8", "--quiet"]) == 0
    assert capsys.readouterr().out.split() == [str(home / "text8" / "text8.zip")]
    assert text8.default_text8_path() == home / "text8" / "text8.zip"
    assert text8.load_text8() == "the cat sat on the mat".split()
    assert sorted(p.name for p in (home / "text8").iterdir()) == ["text8.zip"]


def test_data_where_names_both_folders(home, tmp_path, capsys):
    assert main(["data", "where"]) == 0
    out = capsys.readouterr().out
    assert f"fetch into: {home}" in out and "$NTKDEPTH_DATA" in out
    assert f"read-only fallback: {tmp_path / 'shared' / 'data'}  (absent)" in out
