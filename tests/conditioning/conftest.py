import pytest

from stable_audio_kit.conditioning import build_text_encoder
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
