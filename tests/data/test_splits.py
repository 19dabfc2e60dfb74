"""The train/validation split: deterministic, stable as files are added, groups kept together."""

from __future__ import annotations

import random

import pytest

from stable_audio_kit.data import CatalogueItem, split_catalogue


def _items(n: int, group_every: int = 0) -> list[CatalogueItem]:
    return [
        CatalogueItem(f"f{i:03d}.wav", "c", {"group": f"g{i // group_every}"} if group_every else {}) for i in range(n)
    ]


def test_split_is_deterministic_and_disjoint():
    items = _items(400)
    train, valid = split_catalogue(items, valid_fraction=0.2)
    assert {i.path for i in train}.isdisjoint(i.path for i in valid)
    assert len(train) + len(valid) == 400
    assert 40 < len(valid) < 120
    shuffled = list(items)
    random.Random(0).shuffle(shuffled)
    _, valid2 = split_catalogue(shuffled, valid_fraction=0.2)
    assert {i.path for i in valid2} == {i.path for i in valid}
    # Adding files never moves existing ones.
    _, valid3 = split_catalogue(items + _items(500)[400:], valid_fraction=0.2)
    assert {i.path for i in valid} <= {i.path for i in valid3}
    assert split_catalogue(items, valid_fraction=0.0)[1] == []
    with pytest.raises(ValueError, match="valid_fraction"):
        split_catalogue(items, valid_fraction=1.0)


def test_split_keeps_groups_together_and_honours_split_field():
    items = _items(300, group_every=3)
    train, valid = split_catalogue(items, valid_fraction=0.3)
    train_groups = {i.extra["group"] for i in train}
    valid_groups = {i.extra["group"] for i in valid}
    assert valid_groups and train_groups and train_groups.isdisjoint(valid_groups)

    items = _items(6, group_every=3)
    items[0].extra["split"] = "valid"  # pulls its group (items 0-2) into validation
    items[4].extra["split"] = "train"
    solo = CatalogueItem("solo.wav", "c", {"split": "valid"})
    train, valid = split_catalogue([*items, solo], valid_fraction=0.0)
    assert [i.path for i in valid] == ["f000.wav", "f001.wav", "f002.wav", "solo.wav"]
    assert [i.path for i in train] == ["f003.wav", "f004.wav", "f005.wav"]

    items[1].extra["split"] = "train"
    with pytest.raises(ValueError, match="conflicting splits"):
        split_catalogue(items)
    with pytest.raises(ValueError, match="expected one of"):
        split_catalogue([CatalogueItem("a.wav", None, {"split": "test"})])
