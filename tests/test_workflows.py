"""The sound-design workflows: audio-to-audio, inpainting and continuation, long-form, schedules, loops.

Shapes, exactness and every bad input on the tiny model; what the workflows promise to sound like
(strength moves the output, joins and wrap points are not seams, a schedule's segments follow their
prompts) on the bundled model, measured.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from stable_audio_kit.evaluation.joins import flux_percentile, jump_percentile
from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR
from stable_audio_kit.schedulers import SCHEDULERS, swap_scheduler
from stable_audio_kit.workflows import (
    assemble_inpainted,
    check_regions,
    circular_resample,
    plan_windows,
    schedule_prompt,
)

bundled_only = pytest.mark.skipif(not DEFAULT_MODEL_DIR.exists(), reason="the default model is not installed")


def seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def tone(pipe, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * pipe.sample_rate)) / pipe.sample_rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


# ------------------------------------------------------------------------------ audio-to-audio
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_audio_to_audio_works_with_every_scheduler(tiny_pipeline, name):
    pipe = tiny_pipeline
    original = pipe.scheduler
    pipe.scheduler = swap_scheduler(original, name)
    try:
        x = tone(pipe, 0.6)
        round_trip = pipe.decode_latents(
            pipe.encode_audio(np.pad(x, ((0, 0), (0, pipe.window_samples - x.shape[-1]))), 1, "cpu", torch.float32)
        )
        at_zero = pipe("a tone", init_audio=x, strength=0.0, num_inference_steps=4, generator=seed()).audios
        assert at_zero.shape == (1, 1, x.shape[-1])
        np.testing.assert_allclose(at_zero[0], round_trip[0, :, : x.shape[-1]].numpy(), atol=1e-5)
        half = pipe("a tone", init_audio=x, strength=0.5, num_inference_steps=4, generator=seed()).audios
        assert np.isfinite(half).all() and not np.allclose(half, at_zero)
    finally:
        pipe.scheduler = original


def test_audio_to_audio_lengths_and_inputs(tiny_pipeline, tmp_path):
    pipe = tiny_pipeline
    x = tone(pipe, 0.5)
    path = tmp_path / "in.wav"
    t = np.arange(8000) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3
    sf.write(path, stereo.T, 16000)  # 0.5 s at another rate and channel count: resampled and mixed
    out = pipe("a tone", init_audio=path, strength=0.3, num_inference_steps=3, generator=seed()).audios
    assert out.shape == (1, 1, round(0.5 * pipe.sample_rate))  # the input's length
    out = pipe("a tone", init_audio=x, seconds_total=0.8, num_inference_steps=3, generator=seed()).audios
    assert out.shape == (1, 1, round(0.8 * pipe.sample_rate))  # the requested length
    torch_in = torch.from_numpy(x[0])
    out = pipe("a tone", init_audio=torch_in, input_sample_rate=pipe.sample_rate, num_inference_steps=2).audios
    assert out.shape[-1] == x.shape[-1]


# ------------------------------------------------------------------------------ inpainting
def test_inpainting_keeps_the_input_outside_the_regions(tiny_pipeline):
    pipe = tiny_pipeline
    sr = pipe.sample_rate
    x = tone(pipe, 0.9)
    regions = [(0.2, 0.4), (0.6, 0.7)]
    out = pipe("a tone", inpaint_audio=x, regions=regions, num_inference_steps=4, generator=seed()).audios[0]
    assert out.shape == x.shape
    fade = round(0.02 * sr)
    outside = np.ones(x.shape[-1], dtype=bool)
    for start, end in regions:
        outside[round(start * sr) - fade : round(end * sr) + fade] = False
    np.testing.assert_array_equal(out[:, outside], x[:, outside])  # sample for sample
    inside = slice(round(0.25 * sr), round(0.35 * sr))
    assert not np.allclose(out[:, inside], x[:, inside])


def test_continuation_is_inpainting_of_a_tail(tiny_pipeline):
    pipe = tiny_pipeline
    x = tone(pipe, 0.5)
    out = pipe("a tone", inpaint_audio=x, seconds_total=0.9, regions=[(0.5, 0.9)], num_inference_steps=3).audios[0]
    assert out.shape == (1, round(0.9 * pipe.sample_rate))
    head = x.shape[-1] - round(0.02 * pipe.sample_rate)
    np.testing.assert_array_equal(out[:, :head], x[:, :head])


def window_starts(pipe, monkeypatch) -> list[tuple[float, float]]:
    """``(seconds_start, seconds_total)`` of every window ``pipe`` samples from now on (the list fills as it runs)."""
    seen = []
    original = pipe.sample

    def sample(request, *args, **kwargs):
        seen.append((float(request.seconds_start[0]), float(request.seconds_total[0])))
        return original(request, *args, **kwargs)

    monkeypatch.setattr(pipe, "sample", sample)
    return seen


def default_overlap(pipe) -> int:
    hop = pipe.vae.hop_length
    return round(0.25 * pipe.window_samples / hop) * hop


def test_continuation_beyond_the_window(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    sr, window = pipe.sample_rate, pipe.window_samples
    x = tone(pipe, 0.6)
    total = 2.5 * pipe.max_seconds
    seen = window_starts(pipe, monkeypatch)
    out = pipe(
        ["a tone", "noise"],
        inpaint_audio=x,
        regions=[(0.6, total)],
        seconds_total=total,
        num_inference_steps=2,
        generator=seed(),
    ).audios
    assert out.shape == (2, 1, round(total * sr)) and np.isfinite(out).all()
    head = x.shape[-1] - round(0.02 * sr)  # the join's crossfade, as within the window
    for row in out:
        np.testing.assert_array_equal(row[:, :head], x[:, :head])
        assert np.abs(row[:, x.shape[-1] :]).max() > 0  # new audio after it
    # The input is shorter than the window: the first window starts at 0 and keeps all of it; then long-form.
    windows = plan_windows(round(total * sr), window, default_overlap(pipe), x.shape[-1])
    assert (windows[0].start, windows[0].keep) == (0, x.shape[-1])
    assert [s for s, _ in seen] == pytest.approx([w.start / sr for w in windows])
    assert all(t == pytest.approx(total) for _, t in seen)  # each window is told the whole length
    assert windows[-1].start + window == round(total * sr) and len(seen) >= 3


def test_a_long_input_is_continued_from_its_last_window(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    sr, window, overlap = pipe.sample_rate, pipe.window_samples, default_overlap(pipe)
    x = tone(pipe, 2.3 * pipe.max_seconds, freq=220.0)  # longer than the window
    total = 3.4 * pipe.max_seconds
    seen = window_starts(pipe, monkeypatch)
    out = pipe(
        "a tone",
        inpaint_audio=x,
        regions=[(2.3 * pipe.max_seconds, total)],
        seconds_total=total,
        num_inference_steps=2,
        generator=seed(),
    ).audios[0]
    assert out.shape == (1, round(total * sr))
    head = x.shape[-1] - round(0.02 * sr)
    np.testing.assert_array_equal(out[:, :head], x[:, :head])  # the whole input, not just the part sampled
    # No window lies inside the input: the first keeps `window - overlap` of it, the rest is long-form.
    first = x.shape[-1] - (window - overlap)
    expected = [first, x.shape[-1], round(total * sr) - window]
    assert [round(s * sr) for s, _ in seen] == expected
    assert all(t == pytest.approx(total) for _, t in seen)


def sampled_frames(pipe, **kwargs) -> set[int]:
    frames = set()

    def cb(p, i, t, tensors):
        frames.add(tensors["latents"].shape[-1])
        return tensors

    out = pipe("a tone", num_inference_steps=3, generator=seed(), callback_on_step_end=cb, **kwargs).audios
    return out, frames


def test_workflows_sample_only_the_frames_they_need(tiny_pipeline):
    # A short tail (the tiny model's window is 1 s, shorter than the default tail): the input's latents are cut to
    # the frames sampled, and inpainting still copies the input sample for sample outside its region.
    pipe = tiny_pipeline
    x = tone(pipe, 0.4)
    out, frames = sampled_frames(pipe, inpaint_audio=x, regions=[(0.1, 0.2)], tail_seconds=0.1)
    assert frames == {pipe.sampled_frames(0.0, 0.4, 0.1)} and frames != {pipe.unet.config.sample_size}
    head = round((0.1 - 0.02) * pipe.sample_rate)
    tail = round((0.2 + 0.02) * pipe.sample_rate)
    np.testing.assert_array_equal(out[0, :, :head], x[:, :head])
    np.testing.assert_array_equal(out[0, :, tail:], x[:, tail:])
    out, frames = sampled_frames(pipe, init_audio=x, strength=0.5, tail_seconds=0.1)
    assert frames == {pipe.sampled_frames(0.0, 0.4, 0.1)} and out.shape == (1, 1, x.shape[-1])
    out, frames = sampled_frames(pipe, init_audio=x, strength=0.0, tail_seconds=0.1)
    assert frames == set()  # strength 0: no step, the input through the VAE
    assert out.shape == (1, 1, x.shape[-1]) and np.isfinite(out).all()


def test_region_crossfades_stay_outside_the_regions():
    original, generated = np.zeros((1, 1000), np.float32), np.ones((1, 1000), np.float32)
    out = assemble_inpainted(original, generated, [(0.4, 0.6)], 1000, crossfade_seconds=0.05)
    assert (out[0, 400:600] == 1).all() and (out[0, :350] == 0).all() and (out[0, 650:] == 0).all()
    assert 0 < out[0, 375] < 1 and 0 < out[0, 625] < 1
    assert check_regions([(0.5, 0.7), (0.1, 0.2)], 1.0) == [(0.1, 0.2), (0.5, 0.7)]


# ------------------------------------------------------------------------------ long-form and schedules
def test_long_form_has_the_exact_length(tiny_pipeline):
    pipe = tiny_pipeline
    total = 2.5 * pipe.max_seconds
    out = pipe(["a tone", "noise"], seconds_total=total, num_inference_steps=2, generator=seed()).audios
    assert out.shape == (2, 1, round(total * pipe.sample_rate)) and np.isfinite(out).all()
    windows = plan_windows(round(total * pipe.sample_rate), pipe.window_samples, pipe.window_samples // 4)
    assert windows[0].keep == 0 and all(w.keep > 0 for w in windows[1:])
    assert windows[-1].start + pipe.window_samples == round(total * pipe.sample_rate)


def test_long_form_tells_each_window_where_it_is(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    seen = []
    original = pipe.sample

    def sample(request, *args, **kwargs):
        seen.append((request.seconds_start.tolist(), request.seconds_total.tolist()))
        return original(request, *args, **kwargs)

    monkeypatch.setattr(pipe, "sample", sample)
    total = 2.2 * pipe.max_seconds
    pipe("a tone", seconds_total=total, num_inference_steps=2, generator=seed())
    starts = [s[0][0] for s in seen]
    assert starts[0] == 0 and starts == sorted(starts) and len(starts) >= 3
    assert all(abs(s[1][0] - total) < 1e-9 for s in seen)
    assert abs(starts[-1] - (total - pipe.max_seconds)) < 1e-3


def test_prompt_schedule(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    schedule = [("a tone", 1.5 * pipe.max_seconds), ("noise", 1.5 * pipe.max_seconds)]
    assert schedule_prompt(schedule, 0.1) == "a tone" and schedule_prompt(schedule, 2.0 * pipe.max_seconds) == "noise"
    seen = []
    original = pipe.sample
    monkeypatch.setattr(
        pipe, "sample", lambda request, *a, **k: seen.append(request.texts[0]) or original(request, *a, **k)
    )
    out = pipe(schedule, num_inference_steps=2, generator=seed()).audios
    assert out.shape == (1, 1, round(3.0 * pipe.max_seconds * pipe.sample_rate))
    assert seen[0] == "a tone" and seen[-1] == "noise"


# ------------------------------------------------------------------------------ loops
def test_loop_has_the_exact_length_and_denoises_circularly(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    shifts = []
    original = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        shifts.append(sample.shape[-1])
        return original(sample, *args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", forward)
    out = pipe("a tone", loop=True, seconds_total=0.7, num_inference_steps=3, generator=seed()).audios
    assert out.shape == (1, 1, round(0.7 * pipe.sample_rate))
    assert set(shifts) == {round(0.7 * pipe.sample_rate / pipe.vae.hop_length)}  # the loop's frames only
    period = np.sin(2 * np.pi * 3 * np.arange(100) / 100)[None]
    np.testing.assert_allclose(
        circular_resample(period, 150), np.sin(2 * np.pi * 3 * np.arange(150) / 150)[None], atol=1e-9
    )


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(init_audio="x", strength=1.5), r"strength must be in \[0, 1\], got 1.5"),
        (dict(init_audio="x", strength=float("nan")), "strength must be finite, got nan"),
        (dict(strength=0.5), "strength=0.5 given without init_audio"),
        (dict(inpaint_audio="x", regions=[(0.5, 0.3)]), r"region \(0.5, 0.3\) is empty"),
        (dict(inpaint_audio="x", regions=[(0.2, 0.2)]), r"region \(0.2, 0.2\) is empty"),
        (dict(inpaint_audio="x", regions=[(0.1, 0.9)]), r"region \(0.1, 0.9\) ends after the clip, which is 0.5 s"),
        (dict(inpaint_audio="x", regions=[(0.1, 0.3), (0.2, 0.4)]), r"regions \(0.1, 0.3\) and \(0.2, 0.4\) overlap"),
        (dict(inpaint_audio="x", regions=[]), "regions must be a non-empty list"),
        (dict(inpaint_audio="x"), "regions must be a non-empty list"),
        (dict(regions=[(0.1, 0.2)]), "regions given without inpaint_audio"),
        (dict(init_audio="x", inpaint_audio="x", regions=[(0.1, 0.2)]), "not both"),
        (dict(loop=True, seconds_total=0.001), "a loop must last at least one latent frame"),
        (dict(loop="yes"), "loop must be True or False"),
        (dict(loop=True, init_audio="x"), "cannot be combined with input audio"),
        (dict(init_audio="missing.wav"), "init_audio 'missing.wav' does not exist"),
        (dict(init_audio=np.zeros((1, 0), np.float32)), "holds no samples"),
        (dict(init_audio=np.full((1, 100), np.nan, np.float32)), "holds NaN or infinite samples"),
        (dict(init_audio=np.zeros((2, 2, 100), np.float32)), "must be shaped"),
        (dict(seconds_total=30.0, init_audio="x"), "init_audio cannot be combined with long-form"),
        (dict(seconds_total=30.0, overlap_seconds=100.0), "overlap_seconds must be between"),
        (dict(overlap_seconds=0.3), "overlap_seconds applies to long-form generation"),
    ],
)
def test_bad_workflow_input_is_refused_before_work(tiny_pipeline, monkeypatch, kwargs, match):
    pipe = tiny_pipeline
    x = tone(pipe, 0.5)
    kwargs = {k: (x if isinstance(v, str) and v == "x" else v) for k, v in kwargs.items()}
    monkeypatch.setattr(pipe.unet, "forward", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=match):
        pipe("a tone", num_inference_steps=2, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(seconds_total=1.5),
            r"seconds_total \(1.5\) must be longer than inpaint_audio \(2.000 s\) to continue it",
        ),
        (dict(seconds_total=2.0), r"seconds_total \(2\) must be longer than inpaint_audio \(2.000 s\) to continue it"),
        (
            dict(seconds_total=3.0, regions=[(1.0, 2.0)]),
            r"regions must be one region that runs to the end, \[\(start_s, 3\)\]",
        ),
        (dict(seconds_total=3.0, regions=[(0.1, 0.2), (2.0, 3.0)]), "regions must be one region that runs to the end"),
        (dict(seconds_total=3.0, regions=[(0.0, 3.0)]), r"region \(0, 3\) keeps nothing of inpaint_audio"),
        (dict(seconds_total=3.0, regions=[(2.0, 3.5)]), r"region \(2, 3.5\) ends after the clip, which is 3 s long"),
        (dict(seconds_total=3.0, regions=None), "regions must be a non-empty list"),
        (dict(seconds_total=3.0, regions=[(2.0, 3.0)], overlap_seconds=0.9), "overlap_seconds must be between"),
        (dict(seconds_total=3.0, regions=[(2.0, 3.0)], loop=True), "loop cannot be combined with long-form"),
        (dict(seconds_total=3.0, inpaint_audio=None), "regions given without inpaint_audio"),
        (dict(seconds_total=3.0, inpaint_audio=None, regions=None, input_sample_rate=16000), "input_sample_rate given"),
    ],
)
def test_bad_continuations_beyond_the_window_are_refused_before_work(tiny_pipeline, monkeypatch, kwargs, match):
    pipe = tiny_pipeline
    kwargs = {"inpaint_audio": tone(pipe, 2.0), "regions": [(2.0, kwargs["seconds_total"])], **kwargs}
    monkeypatch.setattr(pipe.unet, "forward", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match=match):
        pipe.check_call("a tone", num_inference_steps=2, **kwargs)  # what the CLI runs on every row
    with pytest.raises(ValueError, match=match):
        pipe("a tone", num_inference_steps=2, **kwargs)


def test_a_prompt_schedule_cannot_continue_input_audio(tiny_pipeline, monkeypatch):
    pipe = tiny_pipeline
    monkeypatch.setattr(pipe.unet, "forward", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(ValueError, match="inpaint_audio cannot be combined with a prompt schedule"):
        pipe([("a", 1.0), ("b", 2.0)], inpaint_audio=tone(pipe, 0.5), regions=[(0.5, 3.0)], num_inference_steps=2)


def test_bad_schedules_are_refused(tiny_pipeline, monkeypatch):
    monkeypatch.setattr(tiny_pipeline.unet, "forward", lambda *a, **k: pytest.fail("work started"))
    for schedule, kwargs, match in (
        ([("a", 1.0), ("b", 2.0)], dict(seconds_total=4.0), "the prompt schedule lasts 3 s but seconds_total is 4"),
        ([("a", 1.0), ("b", -2.0)], {}, "schedule entry 'b' must last > 0 seconds"),
        ([("a", 1.0), (3, 2.0)], {}, "each entry of a prompt schedule is a"),
    ):
        with pytest.raises(ValueError, match=match):
            tiny_pipeline(schedule, num_inference_steps=2, **kwargs)


# ------------------------------------------------------------------------------ measured on the bundled model
@pytest.fixture(scope="module")
def bundled():
    from stable_audio_kit import StableAudioKitPipeline

    pipe = StableAudioKitPipeline.from_pretrained()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@bundled_only
def test_strength_moves_the_output_away_from_the_input(bundled):
    """The mel distance to the input grows with strength (5 values), and strength 0 is the VAE round trip."""
    from stable_audio_kit.evaluation.plots import log_mel_db

    prompt = "a rock drum groove at 100 bpm"
    x = bundled(prompt, seconds_total=6.0, num_inference_steps=10, generator=seed(1)).audios[0]
    reference = log_mel_db(x, bundled.sample_rate, 64)[0]
    distances = []
    for strength in (0.0, 0.2, 0.4, 0.6, 0.8):
        y = bundled(prompt, init_audio=x, strength=strength, num_inference_steps=10, generator=seed(2)).audios[0]
        distances.append(float(np.abs(log_mel_db(y, bundled.sample_rate, 64)[0] - reference).mean()))
    assert distances == sorted(distances) and distances[-1] > 2 * distances[0], distances
    window = np.pad(x, ((0, 0), (0, bundled.window_samples - x.shape[-1])))
    round_trip = bundled.decode_latents(bundled.encode_audio(window, 1, "cpu", torch.float32))[0, :, : x.shape[-1]]
    round_trip_distance = float(np.abs(log_mel_db(round_trip.numpy(), bundled.sample_rate, 64)[0] - reference).mean())
    assert abs(distances[0] - round_trip_distance) < 0.05 * round_trip_distance + 1e-6


@bundled_only
@pytest.mark.parametrize("prompt", ["a rock drum groove at 100 bpm", "a calm piano melody in C major at 80 bpm"])
def test_inpainted_and_continued_joins_are_not_seams(bundled, prompt):
    sr = bundled.sample_rate
    x = bundled(prompt, seconds_total=6.0, num_inference_steps=10, generator=seed(1)).audios[0]
    y = bundled(prompt, inpaint_audio=x, regions=[(2.0, 3.5)], num_inference_steps=10, generator=seed(3)).audios[0]
    assert max(flux_percentile(y, round(2.0 * sr)), flux_percentile(y, round(3.5 * sr))) < 0.99
    y = bundled(
        prompt, inpaint_audio=x[:, : 4 * sr], seconds_total=8.0, regions=[(4.0, 8.0)], num_inference_steps=10
    ).audios[0]
    assert y.shape[-1] == 8 * sr and flux_percentile(y, 4 * sr) < 0.99


@bundled_only
@pytest.mark.parametrize("prompt", ["a rock drum groove at 100 bpm", "a calm piano melody in C major at 80 bpm"])
def test_long_form_joins_are_not_seams(bundled, prompt):
    sr = bundled.sample_rate
    y = bundled(prompt, seconds_total=25.0, num_inference_steps=10, generator=seed(6)).audios[0]
    assert y.shape[-1] == round(25.0 * sr)
    hop = bundled.vae.hop_length
    window, keep = bundled.window_samples, round(0.25 * bundled.window_samples / hop) * hop
    joins = [w.start + w.keep for w in plan_windows(y.shape[-1], window, keep)[1:]]
    assert all(flux_percentile(y, j) < 0.99 for j in joins), [flux_percentile(y, j) for j in joins]


@bundled_only
@pytest.mark.parametrize("prompt", ["a rock drum groove at 100 bpm", "a calm piano melody in C major at 80 bpm"])
def test_joins_of_a_continuation_beyond_the_window_are_not_seams(bundled, prompt):
    sr = bundled.sample_rate
    x = bundled(prompt, seconds_total=8.0, num_inference_steps=10, generator=seed(1)).audios[0]
    y = bundled(
        prompt, inpaint_audio=x, regions=[(8.0, 25.0)], seconds_total=25.0, num_inference_steps=10, generator=seed(3)
    ).audios[0]
    assert y.shape[-1] == round(25.0 * sr)
    hop = bundled.vae.hop_length
    window, keep = bundled.window_samples, round(0.25 * bundled.window_samples / hop) * hop
    joins = [w.start + w.keep for w in plan_windows(y.shape[-1], window, keep, x.shape[-1])]
    assert joins[0] == x.shape[-1] and len(joins) == 3
    assert all(flux_percentile(y, j) < 0.99 for j in joins), [flux_percentile(y, j) for j in joins]


@bundled_only
def test_schedule_segments_follow_their_prompts(bundled):
    from stable_audio_kit.evaluation import metrics

    sr = bundled.sample_rate
    y = bundled(
        [("a rock drum groove at 120 bpm", 12.0), ("a calm piano melody in C major", 12.0)],
        num_inference_steps=10,
        generator=seed(8),
    ).audios[0]
    first, second = y[:, : 10 * sr], y[:, 14 * sr :]
    binary = dict(tonal_max=metrics.BINARY_THRESHOLD, percussive_min=metrics.BINARY_THRESHOLD)
    assert metrics.classify_percussive_tonal(metrics.percussive_ratio(first, sr), **binary) == "percussive"
    assert metrics.classify_percussive_tonal(metrics.percussive_ratio(second, sr), **binary) == "tonal"


@bundled_only
@pytest.mark.parametrize("prompt", ["a rock drum groove at 100 bpm", "a calm piano melody in C major at 80 bpm"])
def test_loop_wraps_without_a_seam(bundled, prompt):
    """At the wrap point (end into start) a loop's flux and sample step are ordinary; the same clip without
    loop=True has a seam there."""
    looped = bundled(prompt, loop=True, seconds_total=4.0, num_inference_steps=10, generator=seed(5)).audios[0]
    plain = bundled(prompt, seconds_total=4.0, num_inference_steps=10, generator=seed(5)).audios[0]

    def wrap_flux(clip):
        return flux_percentile(np.concatenate([clip, clip], -1), clip.shape[-1])

    assert looped.shape[-1] == 4 * bundled.sample_rate
    assert wrap_flux(looped) < 0.95 and jump_percentile(looped, -1, 0) < 0.99
    assert wrap_flux(plain) > wrap_flux(looped)
