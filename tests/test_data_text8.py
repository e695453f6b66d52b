"""text8: the plain file and the zip, the vocabulary, skip-gram pairs and their statistics."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from datasets import needs_text8, text8_path

from ntkdepth.data import text8
from ntkdepth.data.files import md5sum
from ntkdepth.data.text8 import Vocabulary, load_text8, pair_statistics, skipgram_pairs



def test_plain_file_and_zip_give_the_same_words(tmp_path):
    plain = tmp_path / "text8"
    plain.write_bytes(b" the cat sat on the mat the end")
    zipped = tmp_path / "text8.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(plain, "text8")
    assert load_text8(plain) == load_text8(zipped) == "the cat sat on the mat the end".split()
    assert load_text8(zipped, max_words=3) == ["the", "cat", "sat"]


def test_files_not_in_text8_format_are_refused(tmp_path):
    bad = tmp_path / "text8"
    bad.write_bytes(b"the Cat sat, on 3 mats")
    with pytest.raises(ValueError, match="not in text8 format"):
        load_text8(bad)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(ValueError, match="no file"):
        load_text8(empty)
    with pytest.raises(FileNotFoundError):
        load_text8(tmp_path / "missing")


@needs_text8
def test_the_real_text8_loads():
    # The official text8.zip or the excerpt in ../shared/data: both open Wikipedia's "Anarchism".
    words = load_text8(text8_path(), max_words=400_000)
    assert len(words) == 400_000 and words[0] == "anarchism"
    vocab = Vocabulary.build(words, 100)
    assert vocab.words[:3] == ("the", "of", "and")
    assert np.all(np.diff(vocab.counts) <= 0)
    assert vocab.counts[0] == words.count("the")


def test_vocabulary_ranks_by_count_then_alphabetically():
    words = "b a c a b d a b e".split()  # a: 3, b: 3, c, d, e: 1
    vocab = Vocabulary.build(words, 3)
    assert vocab.words == ("a", "b", "c")
    np.testing.assert_array_equal(vocab.counts, [3, 3, 1])
    np.testing.assert_array_equal(vocab.encode(words), [1, 0, 2, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="exceeds"):
        Vocabulary.build(words, 6)


def test_skipgram_pairs_and_their_statistics_by_hand():
    ids = np.array([0, 1, 2, 1])
    pairs = skipgram_pairs(ids, window=2)
    # offset 1: (0,1) (1,2) (2,1) and reversed; offset 2: (0,2) (1,1) and reversed.
    assert sorted(map(tuple, pairs.tolist())) == sorted(
        [(0, 1), (1, 2), (2, 1), (1, 0), (2, 1), (1, 2), (0, 2), (1, 1), (2, 0), (1, 1)]
    )
    p, q = pair_statistics(pairs, 4)
    # Centers: 0 twice, 1 five times, 2 three times, 3 never (10 pairs).
    np.testing.assert_allclose(p, [0.2, 0.5, 0.3, 0.0])
    np.testing.assert_allclose(q[1], [0.2, 0.4, 0.4, 0.0])  # contexts of 1: 0, 2, 2, 1, 1
    np.testing.assert_allclose(q[3], 0.0)
    with pytest.raises(ValueError, match="outside"):
        pair_statistics(pairs, 2)
    with pytest.raises(ValueError, match="window"):
        skipgram_pairs(ids, 0)


def test_default_path_names_where_it_looked(monkeypatch, tmp_path):
    from ntkdepth.data import files

    monkeypatch.setattr(files, "shared_data_dir", lambda: tmp_path / "shared")
    monkeypatch.setenv("NTKDEPTH_DATA", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=r"no text8 file found; looked at .*home/text8/text8.zip.*"
                       r"shared/text8/text8.zip.*`ntkdepth data fetch text8`"):
        text8.default_text8_path()
    (tmp_path / "shared" / "text8").mkdir(parents=True)
    (tmp_path / "shared" / "text8" / "text8").write_bytes(b"one two three")
    assert text8.default_text8_path() == tmp_path / "shared" / "text8" / "text8"  # the fallback
    (tmp_path / "home" / "text8").mkdir(parents=True)
    (tmp_path / "home" / "text8" / "text8").write_bytes(b"one two three")
    assert text8.default_text8_path() == tmp_path / "home" / "text8" / "text8"  # the user's own first


def test_checksum_of_a_file(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert md5sum(f) == "900150983cd24fb0d6963f7d28e17f72"
