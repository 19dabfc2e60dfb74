"""The deterministic train/validation split of a catalogue.

:func:`split_catalogue` honours an explicit ``split`` field, keeps items of one ``group`` on the same
side, and otherwise hashes each path, so the split does not depend on file order or Python's hash
seed and adding files never moves existing ones.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from .catalogue import SPLIT_VALUES, CatalogueItem

logger = logging.getLogger(__name__)


def _split_of(item: CatalogueItem) -> str | None:
    value = item.extra.get("split")
    if value is None or value == "":
        return None
    if value not in SPLIT_VALUES:
        raise ValueError(f"{item.path!r} has split {value!r}; expected one of {list(SPLIT_VALUES)}")
    return value


def _hash_unit(key: str) -> float:
    """A stable number in [0, 1) for ``key`` (independent of Python's hash seed)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_catalogue(
    items: Sequence[CatalogueItem], valid_fraction: float = 0.1
) -> tuple[list[CatalogueItem], list[CatalogueItem]]:
    """Deterministic ``(train, valid)`` split.

    An explicit ``split`` extra (``train``/``valid``) wins. Otherwise an item goes to validation when
    a hash of its path falls below ``valid_fraction``, so adding files never moves existing ones.
    Items sharing a non-empty ``group`` extra (e.g. stems or edits of one composition) are hashed by
    group and always land on the same side; an explicit split on any member applies to the whole
    group, and members with conflicting explicit splits raise ``ValueError``.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    group_split: dict[str, str] = {}
    group_owner: dict[str, str] = {}
    for item in items:
        group, split = item.extra.get("group"), _split_of(item)
        if group in (None, "") or split is None:
            continue
        key = str(group)
        if key in group_split and group_split[key] != split:
            raise ValueError(
                f"group {key!r} has conflicting splits: {group_owner[key]!r} is {group_split[key]!r}, "
                f"{item.path!r} is {split!r}"
            )
        group_split[key], group_owner[key] = split, item.path
    train, valid = [], []
    for item in items:
        group = item.extra.get("group")
        split = _split_of(item)
        if group not in (None, ""):
            split = group_split.get(str(group), split)
            key = f"group:{group}"
        else:
            key = f"path:{item.path}"
        if split is None:
            split = "valid" if _hash_unit(key) < valid_fraction else "train"
        (valid if split == "valid" else train).append(item)
    if valid_fraction > 0 and not valid and train:
        logger.warning("validation split is empty (%d items, valid_fraction=%g)", len(train), valid_fraction)
    return train, valid


__all__ = ["split_catalogue"]
