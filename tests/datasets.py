"""Markers for tests that read the real datasets (MNIST's test split, text8).

Where the data is missing (a clone without ``../shared`` and nothing
fetched), these tests are skipped with a reason naming the command that
fetches it. With ``NTKDEPTH_REQUIRE_DATA=1`` (set by ``.ci/run``) they are
never skipped: a missing dataset then fails them.
"""

import os

import pytest

from ntkdepth.data.files import data_roots


def mnist_test_dir():
    """The folder holding MNIST's test split, or ``None``."""
    from ntkdepth.data.mnist import available_splits, mnist_dir

    directory = mnist_dir()
    return directory if "test" in available_splits(directory) else None


def text8_path():
    """The text8 file the library reads by default, or ``None``."""
    from ntkdepth.data.text8 import default_text8_path

    try:
        return default_text8_path()
    except FileNotFoundError:
        return None


def _marker(present: bool, what: str, dataset: str):
    required = os.environ.get("NTKDEPTH_REQUIRE_DATA") == "1"  # run, and fail if it is missing
    places = ", ".join(str(r) for r in data_roots())
    return pytest.mark.skipif(
        not present and not required,
        reason=f"no {what} in {places}: `ntkdepth data fetch {dataset}` downloads it",
    )


needs_mnist = _marker(mnist_test_dir() is not None, "MNIST test split", "mnist")
needs_text8 = _marker(text8_path() is not None, "text8", "text8")


def wordsim_present() -> bool:
    """Whether the word-pair and analogy files the library reads by default are there."""
    from ntkdepth.data.wordsim import default_analogies_path, default_word_pairs_path

    try:
        default_word_pairs_path(), default_analogies_path()
    except FileNotFoundError:
        return False
    return True


needs_wordsim = pytest.mark.skipif(
    not wordsim_present() and os.environ.get("NTKDEPTH_REQUIRE_DATA") != "1",
    reason="no wordsim/wordsim353.tsv and wordsim/questions-words.txt in "
    + ", ".join(str(r) for r in data_roots()) + ": put the two files there",
)
