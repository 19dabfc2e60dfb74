"""The validators the VAEs share. The chunked encode/decode itself is tested through each VAE."""

import math

import pytest

from stable_audio_kit.vae.chunking import check_chunking, check_positive_float, check_positive_int, check_positive_ints


def test_positive_int_refuses_bools_floats_and_non_positive_values():
    assert check_positive_int("n", 3) == 3
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {bad!r}"):
            check_positive_int("n", bad)


def test_positive_ints_names_the_list():
    assert check_positive_ints("ratios", (2, 4)) == [2, 4]
    with pytest.raises(ValueError, match="ratios must not be empty"):
        check_positive_ints("ratios", [])
    with pytest.raises(ValueError, match="every entry of ratios must be a positive integer, got 0"):
        check_positive_ints("ratios", [2, 0])


def test_positive_float_refuses_non_finite_and_non_positive_values():
    assert check_positive_float("x", 2) == 2.0 and type(check_positive_float("x", 2)) is float
    for bad in (0.0, -0.5, math.nan, math.inf, True, "1.0"):
        with pytest.raises(ValueError, match="x must be a finite number > 0"):
            check_positive_float("x", bad)


def test_chunking_needs_an_overlap_smaller_than_half_a_chunk():
    assert check_chunking(30, 2) == (30.0, 2.0)
    with pytest.raises(ValueError, match="chunk_seconds"):
        check_chunking(0, 1)
    with pytest.raises(ValueError, match="overlap_seconds"):
        check_chunking(1.0, 0)
    with pytest.raises(ValueError, match=r"2 \* overlap_seconds \(0.5\) must be less than chunk_seconds \(1.0\)"):
        check_chunking(1.0, 0.5)
