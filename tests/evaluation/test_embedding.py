"""Embedding metrics: FAD, CLAP score, retrieval recall and FAD within groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stable_audio_kit.evaluation import embedding


def test_frechet_distance_zero_for_same_set_and_grows_with_mean_shift():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((300, 16))
    assert embedding.frechet_distance(emb, emb) == pytest.approx(0.0, abs=1e-6)
    # Shifting every dimension by s adds exactly D * s^2 (covariances unchanged).
    distances = [embedding.frechet_distance(emb, emb + s) for s in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(distances, [16 * 0.25, 16 * 1.0, 16 * 4.0], rtol=1e-6)
    other = rng.standard_normal((300, 16))
    assert 0.0 < embedding.frechet_distance(emb, other) < distances[0]


def test_frechet_distance_with_singular_covariances_is_finite():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((8, 32)), rng.standard_normal((10, 32))  # fewer rows than dimensions
    assert embedding.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    distance = embedding.frechet_distance(a, b)
    assert math.isfinite(distance) and distance > 0
    with pytest.raises(ValueError, match="dimension"):
        embedding.frechet_distance(a, rng.standard_normal((8, 31)))
    with pytest.raises(ValueError, match="emb_a"):
        embedding.frechet_distance(a[:1], b)


def test_clap_score_is_mean_matched_cosine():
    rng = np.random.default_rng(2)
    text = rng.standard_normal((20, 8))
    assert embedding.clap_score(3.0 * text, text) == pytest.approx(1.0)
    assert embedding.clap_score(-text, text) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same shape"):
        embedding.clap_score(text, text[:5])
    with pytest.raises(ValueError, match="zero"):
        embedding.clap_score(np.zeros((20, 8)), text)


def test_retrieval_recall_perfect_and_chance():
    rng = np.random.default_rng(3)
    n = 200
    text = rng.standard_normal((n, 32))
    assert embedding.retrieval_recall(text, text) == {"recall@1": 1.0, "recall@5": 1.0}
    random = embedding.retrieval_recall(text, rng.standard_normal((n, 32)), ks=(1, 5, 20))
    assert random["recall@1"] < 0.04
    assert random["recall@5"] < 0.08
    assert random["recall@20"] == pytest.approx(20 / n, abs=0.07)
    # Identical embeddings for everything must not look like perfect retrieval.
    constant = embedding.retrieval_recall(np.ones((10, 4)), np.ones((10, 4)), ks=(1, 5))
    assert constant == {"recall@1": pytest.approx(0.1), "recall@5": pytest.approx(0.5)}
    with pytest.raises(ValueError, match="ks"):
        embedding.retrieval_recall(text, text, ks=(0,))


def test_fad_by_kind_sees_clips_of_the_wrong_kind_where_the_set_fad_cannot():
    # Two kinds far apart in embedding space. Swapping which clips answer which prompts leaves the set (and
    # its FAD) unchanged, but FAD within each requested kind grows.
    rng = np.random.default_rng(0)
    real = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(5, 1, (40, 4))])
    kinds = ["tonal"] * 40 + ["percussive"] * 40
    right = np.concatenate([rng.normal(0, 1, (40, 4)), rng.normal(5, 1, (40, 4))])
    swapped = right[::-1]
    assert embedding.frechet_distance(right, real) == pytest.approx(embedding.frechet_distance(swapped, real))
    assert embedding.fad_by_group(right, real, kinds) < 1.0 < 50.0 < embedding.fad_by_group(swapped, real, kinds)
    # A kind with a single clip has no covariance and is left out of the mean.
    assert embedding.fad_by_group(right, real, ["a"] + ["b"] * 79) == pytest.approx(
        embedding.frechet_distance(right[1:], real[1:])
    )
    assert embedding.fad_by_group(right[:2], real[:2], ["a", "b"]) is None
    with pytest.raises(ValueError, match="3 groups for 80"):
        embedding.fad_by_group(right, real, ["a", "b", "c"])
