import pytest
import torch


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
