import pytest
import torch

from stable_audio_kit.conditioning import (
    PromptNumberEmbedding,
    build_text_encoder,
    encode_text,
    prompt_numbers,
    train_tokenizer,
)
from stable_audio_kit.config import TextConfig


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
