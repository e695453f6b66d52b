"""Word vectors judged against people: Spearman correlation with word-pair similarity scores, analogy
accuracy by 3CosAdd and 3CosMul over the vocabulary, and the PPMI-SVD co-occurrence baseline
(definitions: docs/features.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ntkdepth.data.wordsim import Analogies, WordPairs

__all__ = [
    "AnalogyScore",
    "SimilarityScore",
    "cosine_matrix",
    "ppmi_svd_embeddings",
    "unit_vectors",
    "vectors_from_gram",
    "word_analogies",
    "word_similarity",
]


@dataclass(frozen=True)
class SimilarityScore:
    """Spearman's rank correlation between cosine similarity and the human scores of the covered pairs.

    ``spearman`` is ``None`` where it is undefined: fewer than 3 pairs have
    both words in the vocabulary, or the cosines (or the scores) of the
    covered pairs are all equal. ``pairs`` of ``total`` pairs are covered.
    """

    spearman: float | None
    pairs: int
    total: int

    @property
    def coverage(self) -> float:
        return self.pairs / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyScore:
    """Accuracy of 3CosAdd (``add``) and 3CosMul (``mul``) on the ``questions`` of ``total`` whose
    four words are in the vocabulary (``None`` where none is); ``by_section`` maps each section to
    ``(covered, correct by 3CosAdd, correct by 3CosMul)``; ``chance``: ``1 / (V - 3)``."""

    add: float | None
    mul: float | None
    questions: int
    total: int
    chance: float
    by_section: dict = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.questions / self.total if self.total else 0.0


def _matrix(vectors: ArrayLike) -> np.ndarray:
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"vectors must be a [V, d] matrix, one row a word; got shape {x.shape}")
    return x


def _index(vocabulary: Sequence[str] | Mapping[str, int], size: int) -> dict[str, int]:
    index = dict(vocabulary) if isinstance(vocabulary, Mapping) else {w: i for i, w in enumerate(vocabulary)}
    if not isinstance(vocabulary, Mapping) and len(vocabulary) != size:
        raise ValueError(f"the vocabulary has {len(vocabulary)} words for {size} vectors: row i of the vectors "
                         "is the vector of word i")
    bad = [w for w, i in index.items() if not 0 <= i < size]
    if bad:
        raise ValueError(f"word {bad[0]!r} indexes row {index[bad[0]]}, outside the {size} vectors")
    return index


def unit_vectors(vectors: ArrayLike) -> np.ndarray:
    """``[V, d]`` float64: each row divided by its Euclidean norm.

    A row that is zero or not finite has no direction: an error naming the row.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"vectors must be a [V, d] matrix, one row a word; got shape {x.shape}")
    finite = np.all(np.isfinite(x), axis=1)
    if not finite.all():
        raise ValueError(f"the vector of row {int(np.flatnonzero(~finite)[0])} holds NaN or inf "
                         f"({int((~finite).sum())} such rows)")
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"the vector of row {int(np.flatnonzero(norms == 0)[0])} is zero: its cosine "
                         f"with any word is undefined ({int((norms == 0).sum())} such rows)")
    return x / norms[:, None]


def cosine_matrix(vectors: ArrayLike, rows: ArrayLike | None = None) -> np.ndarray:
    """``[R, R]`` float64 cosine similarities between the rows ``rows`` of ``vectors [V, d]`` (all by default)."""
    x = _matrix(vectors)
    unit = unit_vectors(x if rows is None else x[np.asarray(rows)])
    return unit @ unit.T


def vectors_from_gram(gram: ArrayLike) -> np.ndarray:
    """``[V, r]`` vectors whose inner products are ``gram [V, V]`` (symmetric positive semidefinite).

    From one eigendecomposition, the eigenvalues below ``1e-12`` times the
    largest dropped (rounding makes small ones negative); their cosines are
    ``gram_uv / sqrt(gram_uu gram_vv)``.
    """
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 1:
        raise ValueError(f"gram must be a square [V, V] matrix; got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gram holds NaN or inf")
    scale = float(np.max(np.abs(g)))
    if scale > 0 and np.max(np.abs(g - g.T)) > 1e-8 * scale:
        raise ValueError("gram is not symmetric")
    lam, vec = np.linalg.eigh(0.5 * (g + g.T))
    if scale > 0 and lam[0] < -1e-8 * lam[-1]:
        raise ValueError(f"gram is not positive semidefinite (eigenvalue {lam[0]:.3g} against {lam[-1]:.3g})")
    keep = lam > 1e-12 * max(lam[-1], 0.0)
    return vec[:, keep] * np.sqrt(lam[keep])


def word_similarity(vectors: ArrayLike, vocabulary: Sequence[str] | Mapping[str, int],
                    pairs: WordPairs) -> SimilarityScore:
    """Spearman's correlation between the cosines of ``vectors [V, d]`` and the scores of ``pairs``.

    Row ``i`` of ``vectors`` is the vector of word ``vocabulary[i]`` (or of the
    word that ``vocabulary`` maps to ``i``). Only the pairs with both words in
    the vocabulary count; ties are ranked by their mean rank.
    """
    from scipy.stats import spearmanr

    x = _matrix(vectors)
    index = _index(vocabulary, x.shape[0])
    covered = [(index[a], index[b], s) for a, b, s in zip(pairs.first, pairs.second, pairs.scores)
               if a in index and b in index]
    if len(covered) < 3:
        return SimilarityScore(None, len(covered), len(pairs))
    rows = np.unique([i for i, j, _ in covered] + [j for _, j, _ in covered])
    unit = unit_vectors(x[rows])
    where = {int(r): k for k, r in enumerate(rows)}
    cos = np.array([unit[where[i]] @ unit[where[j]] for i, j, _ in covered])
    human = np.array([s for _, _, s in covered])
    if np.ptp(cos) <= 1e-12 * max(1.0, float(np.max(np.abs(cos)))) or np.ptp(human) == 0:
        return SimilarityScore(None, len(covered), len(pairs))
    return SimilarityScore(float(spearmanr(human, cos).statistic), len(covered), len(pairs))


def word_analogies(vectors: ArrayLike, vocabulary: Sequence[str] | Mapping[str, int], analogies: Analogies,
                   *, epsilon: float = 1e-3, batch: int = 512) -> AnalogyScore:
    """Accuracy on ``a : b :: c : d`` questions, searching the whole vocabulary but ``a``, ``b``, ``c``.

    With ``cos`` the cosine similarity of ``vectors [V, d]`` (row ``i`` the word
    ``vocabulary[i]``), 3CosAdd answers ``argmax_w cos(w, b) - cos(w, a) + cos(w, c)``
    and 3CosMul ``argmax_w s(w, b) s(w, c) / (s(w, a) + epsilon)`` with
    ``s = (cos + 1) / 2``. Only questions whose four words are in the
    vocabulary count (``questions`` of ``total``).
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon}")
    x = _matrix(vectors)
    index = _index(vocabulary, x.shape[0])
    size = x.shape[0]
    chance = 1.0 / max(size - 3, 1)
    covered = [(k, [index[w] for w in q]) for k, q in enumerate(analogies.words) if all(w in index for w in q)]
    by_section: dict[str, list[int]] = {}
    for k, _ in covered:
        by_section.setdefault(analogies.sections[k], [0, 0, 0])[0] += 1
    if not covered:
        return AnalogyScore(None, None, 0, len(analogies), chance, {})
    ids = np.array([q for _, q in covered])  # [Q, 4]
    unit = unit_vectors(x)
    rows = np.unique(ids[:, :3])
    where = np.full(size, -1)
    where[rows] = np.arange(rows.size)
    cos = unit[rows] @ unit.T  # [R, V]: every word against the question words
    hits_add, hits_mul = np.zeros(len(ids), bool), np.zeros(len(ids), bool)
    for start in range(0, len(ids), batch):
        q = ids[start:start + batch]
        ca, cb, cc = (cos[where[q[:, i]]] for i in range(3))
        add = cb - ca + cc
        mul = ((cb + 1) / 2) * ((cc + 1) / 2) / ((ca + 1) / 2 + epsilon)
        line = np.arange(len(q))[:, None]
        for score in (add, mul):
            score[line, q[:, :3]] = -np.inf
        hits_add[start:start + len(q)] = np.argmax(add, axis=1) == q[:, 3]
        hits_mul[start:start + len(q)] = np.argmax(mul, axis=1) == q[:, 3]
    for (k, _), a, m in zip(covered, hits_add, hits_mul):
        counts = by_section[analogies.sections[k]]
        counts[1] += int(a)
        counts[2] += int(m)
    return AnalogyScore(float(hits_add.mean()), float(hits_mul.mean()), len(ids), len(analogies), chance,
                        {s: tuple(c) for s, c in by_section.items()})


def ppmi_svd_embeddings(cooccurrence: ArrayLike, dim: int = 100, *, context_smoothing: float = 0.75,
                        eigenvalue_power: float = 0.5) -> np.ndarray:
    """``[V, dim]`` word vectors from a ``[V, V]`` word-by-context co-occurrence matrix (counts or
    probabilities): the truncated SVD ``U S V^T`` of its positive pointwise mutual information,
    ``U_dim S_dim^eigenvalue_power``.

    ``PPMI(w, c) = max(0, log P(w, c) / (P(w) P_a(c)))`` with the context
    distribution raised to ``a = context_smoothing`` (1: none); entries with
    no co-occurrence are 0. A word that never occurs has a zero row.
    """
    c = np.asarray(cooccurrence, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"cooccurrence must be a square [V, V] matrix with V >= 2; got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("cooccurrence must hold finite counts >= 0")
    if c.sum() == 0:
        raise ValueError("cooccurrence is all zero: no word occurs with any context")
    if not 1 <= dim <= c.shape[0]:
        raise ValueError(f"dim must be in 1..V = 1..{c.shape[0]}; got {dim}")
    if not 0 < context_smoothing <= 1:
        raise ValueError(f"context_smoothing must be in (0, 1]; got {context_smoothing}")
    total = c.sum()
    p_word = c.sum(axis=1) / total
    ctx = c.sum(axis=0) ** context_smoothing
    p_ctx = ctx / ctx.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(c / total) - np.log(p_word)[:, None] - np.log(p_ctx)[None, :]
    ppmi = np.where(c > 0, np.maximum(pmi, 0.0), 0.0)
    if dim < c.shape[0] - 1:
        from scipy.sparse import csr_matrix
        from scipy.sparse.linalg import svds

        # PPMI is sparse (a few percent of the entries on text8); a fixed start keeps the result fixed.
        u, s, _ = svds(csr_matrix(ppmi), k=dim, v0=np.full(c.shape[0], c.shape[0] ** -0.5))
        order = np.argsort(s)[::-1]
        u, s = u[:, order], s[order]
    else:
        u, s, _ = np.linalg.svd(ppmi, full_matrices=False)
    return u[:, :dim] * s[:dim] ** eigenvalue_power
