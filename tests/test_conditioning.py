import pytest
import torch

from stable_audio_kit.conditioning import (
    ConditioningProjection,
    PromptNumberEmbedding,
    build_text_encoder,
    encode_text,
    prompt_numbers,
    train_tokenizer,
)
from stable_audio_kit.config import TextConfig


@pytest.fixture(scope="module")
def text_tower():
    cfg = TextConfig(
        vocab_size=261,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        projection_dim=16,
        max_length=12,
    )
    return build_text_encoder(cfg)


def test_token_states_from_chosen_layer(text_tower):
    encoder, tokenizer = text_tower
    states, mask = encode_text(encoder, tokenizer, ["a calm piano", "drums"], hidden_layer=-2)
    assert states.shape == (2, 12, 16) and mask.shape == (2, 12) and mask.dtype == torch.bool
    assert mask[0].sum() > mask[1].sum()  # the longer prompt has more real tokens
    tokens = tokenizer(["a calm piano"], padding="max_length", truncation=True, max_length=12, return_tensors="pt")
    full = encoder(**tokens, output_hidden_states=True).hidden_states
    torch.testing.assert_close(encode_text(encoder, tokenizer, ["a calm piano"], hidden_layer=-2)[0], full[-2])
    torch.testing.assert_close(encode_text(encoder, tokenizer, ["a calm piano"], hidden_layer=-1)[0], full[-1])
    with pytest.raises(ValueError, match="hidden_layer must be in"):
        encode_text(encoder, tokenizer, ["x"], hidden_layer=7)


def test_long_prompt_is_truncated(text_tower):
    encoder, tokenizer = text_tower
    states, mask = encode_text(encoder, tokenizer, ["word " * 200])
    assert states.shape[1] == 12 and mask.all()


def test_trained_tokenizer_round_trip(tmp_path):
    tok = train_tokenizer(["a calm piano melody", "a loud drum groove"] * 10, vocab_size=300, min_frequency=1)
    ids = tok("a calm piano").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert len(ids) < len("a calm piano") + 2  # merges learned
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("a calm piano").input_ids == ids


def test_local_pretrained_clap_directory(text_tower, tmp_path):
    encoder, tokenizer = text_tower
    encoder.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = build_text_encoder(TextConfig(pretrained=str(tmp_path)))
    a = encode_text(encoder, tokenizer, ["hello"])[0]
    b = encode_text(loaded, tok, ["hello"])[0]
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="is not a local directory"):
        build_text_encoder(TextConfig(pretrained=str(tmp_path / "missing")))


def test_projection_routing_and_shapes():
    proj = ConditioningProjection(text_encoder_dim=16, conditioning_dim=8, max_seconds=60.0)
    text = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    out = proj(text, mask, torch.tensor([0.0, 1.0, 2.0]), 4.0)
    assert out.encoder_hidden_states.shape == (3, 7, 8)
    assert out.encoder_attention_mask.shape == (3, 7) and out.encoder_attention_mask[:, 5:].all()
    assert out.global_hidden_states.shape == (3, 16) and proj.global_dim == 16
    # The timing tokens in the context are the same embeddings as the global vector.
    torch.testing.assert_close(out.encoder_hidden_states[:, 6], out.global_hidden_states[:, 8:])
    other = proj(text, mask, torch.tensor([0.0, 1.0, 2.0]), 9.0)
    assert not torch.allclose(other.global_hidden_states[:, 8:], out.global_hidden_states[:, 8:])


def test_projection_prompt_only_and_global_prompt():
    proj = ConditioningProjection(
        text_encoder_dim=4, conditioning_dim=4, cross_attention=["prompt"], global_cond=["prompt", "seconds_total"]
    )
    text = torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    out = proj(text, mask, 0.0, 1.0)
    assert out.encoder_hidden_states.shape == (2, 3, 4)
    torch.testing.assert_close(out.global_hidden_states[0, :4], text[0, 0])  # masked mean of one token
    torch.testing.assert_close(out.global_hidden_states[1, :4], text[1].mean(0))


def test_projection_rejects_unknown_condition():
    with pytest.raises(ValueError, match="unknown condition 'bpm' in cross_attention; valid names"):
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
        proj(text, mask, 1.0, 2.0).encoder_hidden_states, again(text, mask, 1.0, 2.0).encoder_hidden_states
    )


def test_timing_mask_covers_the_frames_of_the_requested_audio():
    from stable_audio_kit.conditioning import timing_mask

    # 100 Hz, hop 10: 0.35 s is 35 samples, which touch 4 frames; a window 0.1 s into the sound holds 25.
    mask = timing_mask(torch.tensor([0.0, 0.1, 0.0, 0.0]), torch.tensor([0.35, 0.35, 2.0, 0.0]), 4, 8, 100, 10)
    assert mask.dtype == torch.float32
    assert mask.tolist() == [
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1] * 8,  # longer than the window
        [0] * 8,
    ]
    assert timing_mask(0.0, 0.3, 2, 5, 100, 10).tolist() == [[1, 1, 1, 0, 0]] * 2
    with pytest.raises(ValueError, match="seconds_total has 3 values for a batch of 2"):
        timing_mask(0.0, torch.ones(3), 2, 5, 100, 10)


def test_prompt_numbers_line_up_with_the_tokens(text_tower):
    _, tokenizer = text_tower  # byte-level: every character is its own token
    prompts = ["drums 96 BPM", "a 2.5 s hit", "no numbers", "x 12345678 5"]
    values = prompt_numbers(tokenizer, prompts, 12)
    assert values.shape == (4, 12) and values.dtype == torch.float32
    tokens = tokenizer(prompts, padding="max_length", truncation=True, max_length=12, return_offsets_mapping=True)
    for row, prompt in enumerate(prompts):
        for col, (start, end) in enumerate(tokens["offset_mapping"][row]):
            text = prompt[start:end].strip()
            if end > start and text and (text.isdigit() or text == "."):
                assert not torch.isnan(values[row, col]), (prompt, text)
            else:
                assert torch.isnan(values[row, col]), (prompt, text)
    assert set(values[0][~values[0].isnan()].tolist()) == {96.0}
    assert set(values[1][~values[1].isnan()].tolist()) == {2.5}  # "2", "." and "5" all carry 2.5
    assert values[2].isnan().all()
    # 12 tokens with <s> and </s>: "5" falls outside.
    assert set(values[3][~values[3].isnan()].tolist()) == {12345678.0}


def test_prompt_number_embedding_log_scale_and_zero_start():
    embed = PromptNumberEmbedding(8, 10.0, 1000.0, num_frequencies=4)
    values = torch.tensor([[float("nan"), 100.0, 5.0, 1e6]])
    assert embed(values).abs().max() == 0  # the last layer starts at zero
    torch.nn.init.normal_(embed.mlp[-1].weight)
    out = embed(values)
    assert out.shape == (1, 4, 8) and out[0, 0].abs().max() == 0  # no number, no embedding
    torch.testing.assert_close(out[0, 2], embed(torch.tensor([[10.0]]))[0, 0])  # clamped to the range
    torch.testing.assert_close(out[0, 3], embed(torch.tensor([[1000.0]]))[0, 0])
    assert not torch.allclose(embed(torch.tensor([[100.0]])), embed(torch.tensor([[105.0]])))
    for low, high in ((0.0, 10.0), (5.0, 5.0)):
        with pytest.raises(ValueError, match="prompt numbers need 0 < min < max"):
            PromptNumberEmbedding(8, low, high)


def test_projection_adds_prompt_numbers_to_their_tokens_only():
    proj = ConditioningProjection(text_encoder_dim=4, conditioning_dim=4, prompt_numbers=True, prompt_number_max=500.0)
    text, mask = torch.randn(2, 3, 4), torch.ones(2, 3)
    nan = float("nan")
    numbers = torch.tensor([[nan, 120.0, nan], [nan, nan, nan]])
    plain = ConditioningProjection(text_encoder_dim=4, conditioning_dim=4)
    torch.testing.assert_close(proj(text, mask, 0.0, 1.0, numbers).encoder_hidden_states[:, :3], text)
    torch.nn.init.normal_(proj.prompt_number_embedder.mlp[-1].weight)
    out = proj(text, mask, 0.0, 1.0, numbers).encoder_hidden_states
    changed = (out[:, :3] - text).abs().amax(-1) > 0
    assert changed.tolist() == [[False, True, False], [False, False, False]]
    faster = proj(text, mask, 0.0, 1.0, numbers * 1.05).encoder_hidden_states
    assert not torch.allclose(faster[0, 1], out[0, 1])
    assert plain.prompt_number_embedder is None  # off by default; numbers are ignored
    torch.testing.assert_close(plain(text, mask, 0.0, 1.0, numbers).encoder_hidden_states[:, :3], text)
    with pytest.raises(ValueError, match="pass prompt_numbers"):
        proj(text, mask, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"prompt_numbers has shape \(2, 2\), the text states \(2, 3\)"):
        proj(text, mask, 0.0, 1.0, numbers[:, :2])


def test_prompt_tempo_reads_the_bpm_of_each_prompt():
    from stable_audio_kit.conditioning import prompt_tempo

    tempo = prompt_tempo(
        [
            "rock drums at 96 bpm",
            "a 4 bar groove, 72.5 BPM, loud",
            "house beat at 124 beats per minute",
            "124bpm techno, then 90 bpm",  # the first wins
            "a tone of 440 hertz",
            "bpm unknown",
        ]
    )
    assert tempo.dtype == torch.float32
    assert tempo[:4].tolist() == [96.0, 72.5, 124.0, 124.0]
    assert tempo[4:].isnan().all()


def test_beat_grid_phase_of_each_frame():
    from stable_audio_kit.conditioning import beat_grid

    # 120 bpm at 200 Hz with hop 5: a beat every 20 frames, a 4-beat bar every 80.
    grid = beat_grid(torch.tensor([120.0, float("nan"), 120.0]), torch.tensor([0.0, 0.0, 0.5]), 100, 200, 5)
    assert grid.shape == (3, 4, 100) and grid.dtype == torch.float32
    beat_cos, beat_sin, bar_cos, bar_sin = grid[0]
    torch.testing.assert_close(beat_cos[[0, 20, 40, 60]], torch.ones(4))
    torch.testing.assert_close(beat_sin[[5, 25]], torch.ones(2))  # a quarter beat in
    torch.testing.assert_close(bar_cos[[0, 80]], torch.ones(2))
    torch.testing.assert_close(bar_sin[20], torch.tensor(1.0))  # beat 2 is a quarter of the bar
    torch.testing.assert_close(bar_cos[40], torch.tensor(-1.0))
    assert (grid[1] == 0).all(), "no tempo asked for: no grid"
    # Half a second into the sound is one beat in: the same beat phase, the bar a quarter further.
    torch.testing.assert_close(grid[2, :2], grid[0, :2])
    torch.testing.assert_close(grid[2, 2:, :60], grid[0, 2:, 20:80])
    assert beat_grid(torch.tensor([90.0]), 0.0, 7, 100, 5).shape == (1, 4, 7)


def test_beat_grid_rejects_bad_input():
    from stable_audio_kit.conditioning import beat_grid

    with pytest.raises(ValueError, match=r"bpm must be > 0, got \[-60.0\]"):
        beat_grid(torch.tensor([120.0, -60.0]), 0.0, 10, 100, 5)
    with pytest.raises(ValueError, match="bpm must be shaped"):
        beat_grid(torch.tensor(120.0), 0.0, 10, 100, 5)
    with pytest.raises(ValueError, match="seconds_start has 3 values for a batch of 2"):
        beat_grid(torch.tensor([120.0, 90.0]), torch.zeros(3), 10, 100, 5)


def test_prompt_key_reads_tonic_and_mode():
    from stable_audio_kit.conditioning import parse_key, prompt_key

    assert prompt_key(
        [
            "a calm piano melody in C major at 80 bpm",
            "Key: G# minor. Tempo: 107 bpm",
            "in the key of Bb min",
            "strings in E♭ Major, then A minor",  # the first wins
            "F#minor arpeggio",
            "a major chord on a piano",  # lower case "a" is a word, not a key
            "drums at 120 bpm",
        ]
    ) == [(0, "major"), (8, "minor"), (10, "minor"), (3, "major"), (6, "minor"), None, None]
    assert parse_key("Cb major") == (11, "major") and parse_key("B# minor") == (0, "minor")


def test_key_profile_holds_the_scale_then_the_tonic():
    from stable_audio_kit.conditioning import KEY_PROFILE_SIZE, key_profile

    profile = key_profile([(0, "major"), (9, "minor"), None, (7, "major")])
    assert profile.shape == (4, KEY_PROFILE_SIZE) == (4, 24) and profile.dtype == torch.float32
    c_major = [0, 2, 4, 5, 7, 9, 11]
    assert profile[0, :12].nonzero().flatten().tolist() == c_major
    assert profile[0, 12:].nonzero().flatten().tolist() == [0]
    # A minor has C major's notes and its own tonic.
    assert torch.equal(profile[1, :12], profile[0, :12]) and profile[1, 12:].nonzero().flatten().tolist() == [9]
    assert (profile[2] == 0).all(), "no key asked for: zeros"
    assert profile[3, :12].nonzero().flatten().tolist() == [0, 2, 4, 6, 7, 9, 11]  # G major has F#
    with pytest.raises(ValueError, match=r"got \(12, 'major'\)"):
        key_profile([(12, "major")])
    with pytest.raises(ValueError, match=r"got \(0, 'dorian'\)"):
        key_profile([(0, "dorian")])
