"""The conditioning interface: requests, the registry, overrides and the CFG rule."""

import pytest
import torch

from stable_audio_kit.conditioning import (
    CONDITIONERS,
    Conditioner,
    Conditioning,
    ConditioningRequest,
    check_overrides,
    make_conditioner,
    null_context,
    register_conditioner,
    unconditional,
)


def conditioning(batch: int, offset: float = 0.0) -> Conditioning:
    """A hand-made conditioning: a context, a global vector, a timing channel kept under CFG, a beat grid
    and a key that follow the prompt."""
    grid = torch.full((batch, 4, 5), 2.0 + offset)
    key = torch.full((batch, 24), 3.0 + offset)
    return Conditioning(
        torch.full((batch, 3, 2), 5.0 + offset),
        torch.tensor([[True, False, True]]).expand(batch, 3),
        torch.full((batch, 4), 7.0 + offset),
        {"timing_mask": torch.ones(batch, 1, 5), "beat_grid": grid},
        {"key": key},
        {"beat_grid": torch.zeros_like(grid), "key": torch.zeros_like(key)},
    )


def test_cfg_dropout_rows():
    cond = conditioning(4)
    dropped = torch.tensor([True, False, False, True])
    out = unconditional(cond, rows=dropped)
    assert (out.encoder_hidden_states[dropped] == 0).all() and out.encoder_attention_mask[dropped].all()
    torch.testing.assert_close(out.encoder_hidden_states[~dropped], cond.encoder_hidden_states[~dropped])
    assert torch.equal(out.encoder_attention_mask[~dropped], cond.encoder_attention_mask[~dropped])
    torch.testing.assert_close(out.global_hidden_states, cond.global_hidden_states)  # timing kept
    torch.testing.assert_close(out.channels["timing_mask"], cond.channels["timing_mask"])  # timing kept
    assert (out.channels["beat_grid"][dropped] == 0).all() and (out.film["key"][dropped] == 0).all()
    torch.testing.assert_close(out.channels["beat_grid"][~dropped], cond.channels["beat_grid"][~dropped])
    null, null_mask = null_context(cond.encoder_hidden_states[:1], cond.encoder_attention_mask[:1])
    assert (null == 0).all() and null_mask.all()


def test_unconditional_half_with_and_without_a_negative_prompt():
    cond, negative = conditioning(2), conditioning(2, offset=10.0)
    out = unconditional(cond)
    assert (out.encoder_hidden_states == 0).all() and (out.film["key"] == 0).all()
    assert (out.channels["beat_grid"] == 0).all()
    out = unconditional(cond, negative)
    torch.testing.assert_close(out.encoder_hidden_states, negative.encoder_hidden_states)
    torch.testing.assert_close(out.channels["beat_grid"], negative.channels["beat_grid"])
    torch.testing.assert_close(out.film["key"], negative.film["key"])
    torch.testing.assert_close(out.global_hidden_states, cond.global_hidden_states)
    kwargs = Conditioning.cat([out, cond]).repeat_interleave(2).unet_inputs()
    assert kwargs["channel_inputs"].shape == (8, 5, 5) and kwargs["film_inputs"].shape == (8, 24)
    assert (kwargs["channel_inputs"][:, 0] == 1).all()  # the timing mask comes first, as routed


def test_request_and_overrides():
    request = ConditioningRequest.make(["drums at 96 bpm", "a pad in F# minor"], 0.0, [1.0, 2.0], 10, {"bpm": None})
    assert request.batch == 2 and request.overrides == {}
    assert request.seconds_start.tolist() == [0.0, 0.0] and request.seconds_total.dtype == torch.float64
    assert request.prompts[0].tempo == 96.0 and request.prompts[1].key == (6, "minor")
    negative = request.negative(["noise at 60 bpm", "noise"])
    assert negative.role == "negative prompt" and negative.prompts[0].tempo == 60.0
    with pytest.raises(ValueError, match="seconds_total has 3 values for a batch of 2"):
        ConditioningRequest.make(["a", "b"], 0.0, [1.0, 2.0, 3.0], 10)
    assert check_overrides({"bpm": 120, "key": "Bb major"}) == {"bpm": 120.0, "key": (10, "major")}
    for bad, match in (
        ({"bpm": 0}, "bpm must be a finite number > 0, got 0"),
        ({"key": "H major"}, "key must name a major or minor key"),
        ({"tempo": 120}, "unknown conditioning override 'tempo'; valid names"),
    ):
        with pytest.raises(ValueError, match=match):
            check_overrides(bad)


def test_registry():
    assert {"prompt", "prompt_numbers", "seconds_start", "seconds_total", "timing_mask", "beat_grid", "key"} <= set(
        CONDITIONERS
    )
    with pytest.raises(ValueError, match="unknown conditioning input 'melody'; valid names"):
        make_conditioner("melody")
    with pytest.raises(ValueError, match="takes no options"):
        make_conditioner("timing_mask", {"size": 2})

    class Wrong(Conditioner):
        name = "wrong"
        placement = "channels"

    with pytest.raises(ValueError, match="must give a size >= 1"):
        register_conditioner(Wrong)
    assert "wrong" not in CONDITIONERS


def test_inputs_of_installed_packages_are_found_by_entry_point(monkeypatch):
    import importlib.metadata

    class Loudness(Conditioner):
        name = "test_plugin_loudness"
        placement = "film"
        size = 1

        def features(self, request, model, device):
            return torch.zeros(request.batch, 1)

    class Entry:
        name, value = "test_plugin_loudness", "some_package.inputs:Loudness"

        def load(self):
            return Loudness

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [Entry()] if group.endswith("conditioners") else []
    )
    try:
        assert isinstance(make_conditioner("test_plugin_loudness"), Loudness)
    finally:
        CONDITIONERS.pop("test_plugin_loudness", None)
