import pytest
import torch


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
    with pytest.raises(ValueError, match="a key's tonic is a pitch class 0-11, got 12"):
        key_profile([(12, "major")])
    with pytest.raises(ValueError, match="a key's mode is 'major' or 'minor', got 'dorian'"):
        key_profile([(0, "dorian")])
