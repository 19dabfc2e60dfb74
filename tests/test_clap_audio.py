"""CLAP audio side: the HTSAT geometry checks, the feature extractor, and the embedder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ClapAudioConfig, ClapConfig, ClapModel

from stable_audio_kit.clap_audio import (
    ClapAudioEmbedder,
    build_feature_extractor,
    check_audio_config,
    clip_samples,
    extract_features,
    spec_frames,
)
from stable_audio_kit.conditioning import train_tokenizer

SR = 8000
TINY_AUDIO = {
    "num_mel_bins": 16,
    "spec_size": 32,
    "patch_size": 4,
    "patch_stride": [4, 4],
    "window_size": 4,
    "depths": [1, 1],
    "num_attention_heads": [1, 2],
    "patch_embeds_hidden_size": 8,
    "hidden_size": 16,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models have a few thousand parameters: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def embedder() -> ClapAudioEmbedder:
    torch.manual_seed(0)
    tokenizer = train_tokenizer(["a low sine", "noise bursts"], vocab_size=300, min_frequency=1)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 18,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = ClapModel(ClapConfig(text_config=text, audio_config=TINY_AUDIO, projection_dim=12)).eval()
    extractor = build_feature_extractor(model.config.audio_config, SR, 0.5)
    return ClapAudioEmbedder(model, extractor, tokenizer)


def tone(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(round(seconds * sr)) / sr)).astype(np.float32)


def test_feature_extractor_fits_the_audio_tower():
    config = ClapAudioConfig(**TINY_AUDIO)
    extractor = build_feature_extractor(config, SR, 0.5)
    assert clip_samples(extractor) == 4000 and spec_frames(config) == 64
    features = extract_features(extractor, [tone(440, 0.5), tone(440, 0.1)])
    assert features.shape[:2] == (2, 1) and features.shape[-1] == 16
    assert 2 <= features.shape[2] <= 64 and features.dtype == torch.float32 and torch.isfinite(features).all()
    # A short clip is repeated to the clip length ("repeatpad"), so a pure tone looks the same.
    torch.testing.assert_close(features[0, 0, 10:40], features[1, 0, 10:40], atol=1.0, rtol=0.0)
    with pytest.raises(ValueError, match="1 to 4000 samples"):
        extract_features(extractor, [tone(440, 0.6)])


@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_features_equal_the_transformers_extractor(padding):
    """The batched torch path computes exactly what ClapFeatureExtractor's numpy loop computes."""
    extractor = build_feature_extractor(ClapAudioConfig(**TINY_AUDIO), SR, 0.5, padding=padding)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.3 for n in (4000, 2500, 1333, 300, 1)]
    clips.append(np.zeros(4000, dtype=np.float32))
    reference = extractor(
        clips, sampling_rate=SR, max_length=4000, truncation="rand_trunc", padding=padding, return_tensors="pt"
    )["input_features"]
    torch.testing.assert_close(extract_features(extractor, clips), reference.float(), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spec_size": 24}, "multiple of audio.num_mel_bins"),
        ({"patch_size": 2}, "one equal square"),
        ({"num_attention_heads": [1]}, "one entry per stage"),
        ({"num_attention_heads": [3, 2]}, "heads dividing it"),
        ({"hidden_size": 32}, "audio.hidden_size must be"),
        ({"window_size": 8}, "smaller than audio.window_size"),
        ({"enable_fusion": True}, "enable_fusion"),
        ({"depths": [1, 1, 1, 1, 1], "num_attention_heads": [1] * 5, "hidden_size": 128}, "must halve 4 times"),
    ],
)
def test_impossible_tower_sizes_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        check_audio_config(ClapAudioConfig(**{**TINY_AUDIO, **change}))


def test_default_htsat_geometry_is_accepted():
    check_audio_config(ClapAudioConfig())  # laion/clap-htsat-unfused's sizes


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hop_length": 10}, "more than the audio tower's 64"),
        ({"fft_window_size": 16}, "mel filters cover no FFT bin"),
        ({"frequency_max": 5000.0}, "Nyquist"),
        ({"padding": "zeros"}, "features.padding"),
    ],
)
def test_bad_feature_settings_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        build_feature_extractor(ClapAudioConfig(**TINY_AUDIO), SR, 0.5, **options)


def test_embed_audio_gives_unit_rows_for_any_length_rate_and_layout(embedder):
    clips = [tone(220, 0.5), tone(880, 0.2), tone(440, 1.3), np.stack([tone(330, 0.4), tone(330, 0.4)])]
    emb = embedder.embed_audio(clips, SR)
    assert emb.shape == (4, 12) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(emb, embedder.embed_audio(clips, SR))  # deterministic
    np.testing.assert_allclose(emb, embedder.embed_audio(clips, SR, batch_size=2), atol=1e-6)  # any batching
    # A batch array works, and so does another sample rate (resampled to the CLAP's).
    batch = np.stack([tone(220, 0.5), tone(880, 0.5)])
    assert embedder.embed_audio(batch, SR).shape == (2, 12)
    at_16k = embedder.embed_audio([tone(220, 0.5, 16000)], 16000)
    assert float(at_16k[0] @ emb[0]) > 0.99
    # A clip of two identical windows embeds like one window (pieces are averaged by length).
    window = tone(523, 0.5)
    np.testing.assert_allclose(
        embedder.embed_audio([np.concatenate([window, window])], SR), embedder.embed_audio([window], SR), atol=1e-5
    )


def test_embed_text_gives_unit_rows(embedder):
    emb = embedder.embed_text(["a low sine", "noise bursts", "something never seen"])
    assert emb.shape == (3, 12)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_save_and_load_round_trip(embedder, tmp_path):
    embedder.save_pretrained(tmp_path / "clap")
    loaded = ClapAudioEmbedder.from_pretrained(tmp_path / "clap")
    assert loaded.sample_rate == SR and loaded.clip_seconds == 0.5 and loaded.embedding_dim == 12
    clips = [tone(220, 0.5), tone(880, 0.3)]
    np.testing.assert_allclose(loaded.embed_audio(clips, SR), embedder.embed_audio(clips, SR), atol=1e-6)
    np.testing.assert_allclose(loaded.embed_text(["a low sine"]), embedder.embed_text(["a low sine"]), atol=1e-6)
    with pytest.raises(ValueError, match="not a CLAP folder"):
        ClapAudioEmbedder.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("audios", "message"),
    [
        ([np.zeros(0, dtype=np.float32)], "non-empty"),
        ([np.full(100, np.nan, dtype=np.float32)], "NaN"),
        ([np.zeros((400, 2), dtype=np.float32)], "transpose"),
        (np.zeros(400, dtype=np.float32), r"\(N, samples\)"),
        ([], "non-empty batch"),
    ],
)
def test_bad_audio_is_refused(embedder, audios, message):
    with pytest.raises(ValueError, match=message):
        embedder.embed_audio(audios, SR)


def test_bad_sample_rate_and_prompts_are_refused(embedder):
    with pytest.raises(ValueError, match="sample_rate"):
        embedder.embed_audio([tone(220, 0.5)], 0)
    with pytest.raises(ValueError, match="prompts"):
        embedder.embed_text("a single string")
