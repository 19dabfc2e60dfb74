import pytest
import torch

from stable_audio_kit.conditioning import ConditioningProjection, per_item


def embed(proj, text, mask, seconds_start, seconds_total, numbers=None):
    """The projection's output for hand-made features: text states, timing numbers and prompt numbers."""
    batch = text.shape[0]
    features = {
        "prompt": (text, mask.bool()),
        "seconds_start": per_item("seconds_start", seconds_start, batch, None, torch.float64),
        "seconds_total": per_item("seconds_total", seconds_total, batch, None, torch.float64),
    }
    if numbers is not None:
        features["prompt_numbers"] = numbers
    return proj(features)


def test_projection_routing_and_shapes():
    proj = ConditioningProjection(text_encoder_dim=16, conditioning_dim=8, max_seconds=60.0)
    text = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    out = embed(proj, text, mask, torch.tensor([0.0, 1.0, 2.0]), 4.0)
    assert out.encoder_hidden_states.shape == (3, 7, 8)
    assert out.encoder_attention_mask.shape == (3, 7) and out.encoder_attention_mask[:, 5:].all()
    assert out.global_hidden_states.shape == (3, 16) and proj.global_dim == 16
    # The timing tokens in the context are the same embeddings as the global vector.
    torch.testing.assert_close(out.encoder_hidden_states[:, 6], out.global_hidden_states[:, 8:])
    other = embed(proj, text, mask, torch.tensor([0.0, 1.0, 2.0]), 9.0)
    assert not torch.allclose(other.global_hidden_states[:, 8:], out.global_hidden_states[:, 8:])


def test_projection_prompt_only_and_global_prompt():
    proj = ConditioningProjection(
        text_encoder_dim=4, conditioning_dim=4, cross_attention=["prompt"], global_cond=["prompt", "seconds_total"]
    )
    text = torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    out = embed(proj, text, mask, 0.0, 1.0)
    assert out.encoder_hidden_states.shape == (2, 3, 4)
    torch.testing.assert_close(out.global_hidden_states[0, :4], text[0, 0])  # masked mean of one token
    torch.testing.assert_close(out.global_hidden_states[1, :4], text[1].mean(0))


def test_projection_rejects_unknown_condition():
    with pytest.raises(ValueError, match="unknown conditioning input 'bpm'; valid names"):
        ConditioningProjection(cross_attention=["prompt", "bpm"])
    with pytest.raises(ValueError, match="max_seconds must be greater"):
        ConditioningProjection(max_seconds=0.0)


def test_projection_round_trip(tmp_path):
    proj = ConditioningProjection(text_encoder_dim=4, conditioning_dim=6, max_seconds=30.0, text_hidden_layer=-3)
    proj.save_pretrained(tmp_path)
    again = ConditioningProjection.from_pretrained(tmp_path)
    assert again.config.text_hidden_layer == -3 and list(again.config.cross_attention) == list(
        proj.config.cross_attention
    )
    text, mask = torch.randn(1, 2, 4), torch.ones(1, 2)
    torch.testing.assert_close(
        embed(proj, text, mask, 1.0, 2.0).encoder_hidden_states,
        embed(again, text, mask, 1.0, 2.0).encoder_hidden_states,
    )


def test_projection_adds_prompt_numbers_to_their_tokens_only():
    proj = ConditioningProjection(text_encoder_dim=4, conditioning_dim=4, prompt_numbers=True, prompt_number_max=500.0)
    text, mask = torch.randn(2, 3, 4), torch.ones(2, 3)
    nan = float("nan")
    numbers = torch.tensor([[nan, 120.0, nan], [nan, nan, nan]])
    plain = ConditioningProjection(text_encoder_dim=4, conditioning_dim=4)
    torch.testing.assert_close(embed(proj, text, mask, 0.0, 1.0, numbers).encoder_hidden_states[:, :3], text)
    torch.nn.init.normal_(proj.embedders["prompt_numbers"].mlp[-1].weight)
    out = embed(proj, text, mask, 0.0, 1.0, numbers).encoder_hidden_states
    changed = (out[:, :3] - text).abs().amax(-1) > 0
    assert changed.tolist() == [[False, True, False], [False, False, False]]
    faster = embed(proj, text, mask, 0.0, 1.0, numbers * 1.05).encoder_hidden_states
    assert not torch.allclose(faster[0, 1], out[0, 1])
    assert "prompt_numbers" not in plain.embedders  # off by default; numbers are ignored
    torch.testing.assert_close(embed(plain, text, mask, 0.0, 1.0, numbers).encoder_hidden_states[:, :3], text)
    with pytest.raises(ValueError, match=r"the features lack \['prompt_numbers'\]"):
        embed(proj, text, mask, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"prompt_numbers gives \(2, 2, 4\) for the prompt's token states \(2, 3, 4\)"):
        embed(proj, text, mask, 0.0, 1.0, numbers[:, :2])
