"""Word-embedding evaluation sets: word pairs scored by people (WordSim-353, SimLex) and analogy
questions (word2vec's ``questions-words.txt``), read from any file of those formats (docs/features.md).
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass

import numpy as np

from ntkdepth.data.files import DataError, data_roots, file_record

__all__ = [
    "ANALOGIES_FILE",
    "ANALOGIES_MD5",
    "WORD_PAIRS_FILE",
    "WORD_PAIRS_MD5",
    "Analogies",
    "WordPairs",
    "default_analogies_path",
    "default_word_pairs_path",
    "load_analogies",
    "load_word_pairs",
    "wordsim_record",
]

WORD_PAIRS_FILE = "wordsim/wordsim353.tsv"
ANALOGIES_FILE = "wordsim/questions-words.txt"
#: MD5 of WordSim-353 (353 pairs, the mean human score, tab-separated, with two ``#`` header lines).
WORD_PAIRS_MD5 = "fa3334003a2c00a47810856c5813a990"
#: MD5 of word2vec's ``questions-words.txt`` (19,544 questions in 14 sections).
ANALOGIES_MD5 = "8b7461cbf7ecc0aec9b32eb626821105"


@dataclass(frozen=True)
class WordPairs:
    """Word pairs with a human similarity score: ``first [P]``, ``second [P]``, ``scores [P]``."""

    first: tuple[str, ...]
    second: tuple[str, ...]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class Analogies:
    """Analogy questions ``a : b :: c : d`` (``words [Q, 4]``) and the section of each (``sections [Q]``)."""

    words: tuple[tuple[str, str, str, str], ...]
    sections: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.words)


def _default(name: str, setting: str) -> Path:
    tried = []
    for root in data_roots():
        path = root / name
        tried.append(str(path))
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {Path(name).name} found; looked at {', '.join(tried)}. Put the file "
                            f"there, or name a file of the same format with the setting {setting}")


def default_word_pairs_path() -> Path:
    """``wordsim/wordsim353.tsv`` in the user data directory, else in ``../shared/data``."""
    return _default(WORD_PAIRS_FILE, "word_pairs_path")


def default_analogies_path() -> Path:
    """``wordsim/questions-words.txt`` in the user data directory, else in ``../shared/data``."""
    return _default(ANALOGIES_FILE, "analogies_path")


def _lines(path: Path | str | None, default) -> tuple[Path, list[str]]:
    path = default() if path is None or str(path) == "" else Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder: name the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    return path, text.splitlines()


def load_word_pairs(path: str | Path | None = None, *, lowercase: bool = True) -> WordPairs:
    """The pairs of a word-similarity file: ``word1 <tab> word2 <tab> score`` a line.

    Lines starting with ``#`` and blank lines are skipped; further columns
    are ignored. ``lowercase`` folds the words to lower case (text8 is
    lower case). Default file: :func:`default_word_pairs_path`. A line
    without two words and a finite score is an error naming the line.
    """
    path, lines = _lines(path, default_word_pairs_path)
    first, second, scores = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) < 3 or not fields[0] or not fields[1]:
            raise DataError(f"{path}, line {number}: expected 'word1<tab>word2<tab>score', got {line!r}")
        try:
            score = float(fields[2])
        except ValueError:
            raise DataError(f"{path}, line {number}: the score {fields[2]!r} is not a number (a header line "
                            "must start with '#')") from None
        if not np.isfinite(score):
            raise DataError(f"{path}, line {number}: the score {fields[2]!r} is not finite")
        a, b = (fields[0].lower(), fields[1].lower()) if lowercase else (fields[0], fields[1])
        first.append(a)
        second.append(b)
        scores.append(score)
    if not scores:
        raise DataError(f"{path} holds no word pairs")
    return WordPairs(tuple(first), tuple(second), np.array(scores, np.float64))


def load_analogies(path: str | Path | None = None, *, lowercase: bool = True) -> Analogies:
    """The questions of an analogy file: ``: section`` headers, then ``a b c d`` lines (``a : b :: c : d``).

    Questions before the first header belong to the section ``""``; blank
    lines and lines starting with ``#`` are skipped. ``lowercase`` folds the
    words to lower case. Default file: :func:`default_analogies_path`. A
    line that is not four words is an error naming the line.
    """
    path, lines = _lines(path, default_analogies_path)
    words, sections, section = [], [], ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith(":"):
            section = stripped[1:].strip()
            continue
        fields = stripped.lower().split() if lowercase else stripped.split()
        if len(fields) != 4:
            raise DataError(f"{path}, line {number}: expected four words 'a b c d', got {line!r}")
        words.append(tuple(fields))
        sections.append(section)
    if not words:
        raise DataError(f"{path} holds no analogy questions")
    return Analogies(tuple(words), tuple(sections))


def wordsim_record(path: str | Path, items: int, used: int) -> dict:
    """What a run read from an evaluation file: path, bytes, MD5, whether it is the known
    WordSim-353 or word2vec file (``official``), its ``items`` (pairs or questions) and how many
    the vocabulary covered (``used``)."""
    record = file_record(path)
    known = {WORD_PAIRS_MD5: "WordSim-353 (MD5 checked)", ANALOGIES_MD5: "word2vec's analogy questions (MD5 checked)"}
    kind = known.get(record["md5"], "a file in the same format that is not the published one")
    return {**record, "kind": kind, "official": record["md5"] in known, "items": int(items), "covered": int(used)}
