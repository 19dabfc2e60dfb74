"""Embedding metrics for ``sak evaluate``: FAD, CLAP score and text-to-audio retrieval recall.

Pure functions on ``(items, dim)`` embedding arrays (CLAP audio and text embeddings in the
evaluation); numpy and scipy only. Malformed input (wrong rank, too few rows, NaN/inf, mismatched
shapes) raises ``ValueError`` naming the value.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..utils import check_finite_number

logger = logging.getLogger(__name__)


def _as_embeddings(emb: object, name: str, min_rows: int = 1) -> np.ndarray:
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (items, dim), got {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (FAD on audio embeddings).

    ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrtm(S_a S_b))`` with sample covariances.

    Args:
        emb_a: ``(N, D)`` embeddings, N >= 2.
        emb_b: ``(M, D)`` embeddings, M >= 2, same D.
        eps: added to both covariance diagonals when ``sqrtm`` of the product fails (singular
            covariances, common when N < D).

    Returns:
        The distance (>= 0, in squared embedding units); ~0 for a set against itself.
    """
    from scipy import linalg

    a = _as_embeddings(emb_a, "emb_a", min_rows=2)
    b = _as_embeddings(emb_b, "emb_b", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"emb_a and emb_b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    eps = check_finite_number("eps", eps)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    product = cov_a @ cov_b
    covmean = linalg.sqrtm(product)
    # sqrtm of a (near-)singular product can come back non-finite or inaccurate; regularise.
    norm = np.linalg.norm(product)
    if not np.all(np.isfinite(covmean)) or (norm > 0 and np.linalg.norm(covmean @ covmean - product) > 1e-3 * norm):
        logger.warning("frechet_distance: singular covariance product, adding %g to the diagonals", eps)
        offset = eps * np.eye(cov_a.shape[0])
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    # Imaginary parts are numerical noise: the eigenvalues of S_a S_b are real and >= 0.
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    distance = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
    # Rounding can push a true zero slightly negative.
    return max(distance, 0.0)


def _unit_rows(emb: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has all-zero rows {np.flatnonzero(norms[:, 0] == 0).tolist()}; cosine is undefined")
    return emb / norms


def clap_score(audio_emb: np.ndarray, text_emb: np.ndarray) -> float:
    """Mean cosine similarity of matched (audio i, text i) embedding pairs.

    Args:
        audio_emb: ``(N, D)`` CLAP audio embeddings.
        text_emb: ``(N, D)`` CLAP text embeddings of the prompts, in the same order.

    Returns:
        Mean cosine similarity in [-1, 1] (not clipped at 0 nor scaled by 100, unlike some papers).
    """
    audio = _as_embeddings(audio_emb, "audio_emb")
    text = _as_embeddings(text_emb, "text_emb")
    if audio.shape != text.shape:
        raise ValueError(f"audio_emb and text_emb must have the same shape, got {audio.shape} and {text.shape}")
    return float(np.mean(np.sum(_unit_rows(audio, "audio_emb") * _unit_rows(text, "text_emb"), axis=1)))


def retrieval_recall(text_emb: np.ndarray, audio_emb: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Text-to-audio retrieval recall@k by cosine similarity; audio i is the match for text i.

    Args:
        text_emb: ``(N, D)`` text embeddings.
        audio_emb: ``(N, D)`` audio embeddings, same order.
        ks: cut-offs, each >= 1; k >= N gives 1.0 trivially.

    Returns:
        ``{"recall@k": fraction of texts whose audio ranks in the top k}`` for each k; chance level
        is k / N. Exact ties are broken at random in expectation (a match tied with t others
        counts as in the top k with probability ``(k - better) / (t + 1)``), so a model that
        embeds everything identically scores chance rather than 1.0.
    """
    text = _unit_rows(_as_embeddings(text_emb, "text_emb"), "text_emb")
    audio = _unit_rows(_as_embeddings(audio_emb, "audio_emb"), "audio_emb")
    if text.shape != audio.shape:
        raise ValueError(f"text_emb and audio_emb must have the same shape, got {text.shape} and {audio.shape}")
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of integers >= 1, got {ks}")
    sim = text @ audio.T
    correct = np.diag(sim)[:, None]
    better = np.sum(sim > correct, axis=1)
    ties = np.sum(sim == correct, axis=1) - 1  # the match itself is not a tie
    return {f"recall@{k}": float(np.mean(np.clip((k - better) / (ties + 1), 0.0, 1.0))) for k in ks}


def fad_by_group(emb: np.ndarray, real_emb: np.ndarray, groups: Sequence[str]) -> float | None:
    """Count-weighted mean over the groups of the FAD between the ``emb`` and ``real_emb`` rows of each group.

    Args:
        emb: ``(N, D)`` embeddings of the generated clips.
        real_emb: ``(N, D)`` embeddings of the real clips, row i the clip asked for in row i of ``emb``.
        groups: ``(N,)`` the group of each row, e.g. the kind of clip each prompt asks for.

    Returns:
        Unlike the FAD of the whole set, it tells whether what was generated for, say, the drum prompts
        sounds like the real drum clips. Groups with fewer than 2 rows (no covariance) are left out;
        ``None`` when no group has 2.
    """
    groups = np.asarray(list(groups))
    if len(groups) != len(emb) or len(groups) != len(real_emb):
        raise ValueError(f"need one group per clip, got {len(groups)} groups for {len(emb)} and {len(real_emb)} clips")
    total = weight = 0.0
    for g in sorted(set(groups.tolist())):
        rows = groups == g
        if rows.sum() >= 2:
            total += rows.sum() * frechet_distance(emb[rows], real_emb[rows])
            weight += rows.sum()
    return float(total / weight) if weight else None
