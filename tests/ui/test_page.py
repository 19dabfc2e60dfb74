"""The page in a real browser (Debian's Chromium, headless, driven by Playwright) against ``sak ui`` serving the tiny
model (8 kHz mono, a 1 s window), as a sound designer uses it.

Every test also checks, in the ``page`` fixture, that the page asked nothing of any other machine and that the
server still answers. ``SAK_UPDATE_SCREENSHOT=1`` makes the first test write its screenshot to docs/ui.png.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
RATE = 8000  # the tiny model's sample rate


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def fill(page, **fields: str) -> None:
    """Type into fields by their element id (``negative="noise"``; ``random_seed`` is ``#random-seed``)."""
    for name, value in fields.items():
        box = page.locator(f"#{name.replace('_', '-')}").locator("input, textarea").first
        box.fill(str(value))
        box.press("Tab")


def generate(page, done: str = "done") -> None:
    page.click("#generate")
    expect(page.locator("#status")).to_contain_text(done)


def linked_audio(page, view: str) -> tuple[np.ndarray, int, str]:
    """The file a result's player links to, fetched from the server: ``(channels, samples)``, rate, file name."""
    link = page.locator(f"#{view}-audio a[download]")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok, response.status
    data, rate = sf.read(io.BytesIO(response.body()), dtype="float32", always_2d=True)
    return data.T, rate, link.get_attribute("download")


def write_tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return path


def error_shown(page, message) -> None:
    """``message`` (a string or a pattern) in an error message of the page."""
    expect(page.get_by_test_id("toast-body").filter(has_text=message).first).to_be_visible()


def from_audio(page, mode: str) -> None:
    if not page.locator("#mode").is_visible():
        page.get_by_text("From audio").click()
    page.locator("#mode").get_by_label(mode, exact=True).check()


def newest_sidecar(server) -> dict:
    return json.loads(next(server.results()[-1].glob("*.json")).read_text())


def test_a_prompt_and_a_length_give_a_file_of_exactly_that_length(page, tmp_path):
    fill(page, prompt="a page test tone", length="0.6", steps="2")
    generate(page)

    info = page.locator("#result-0-info")
    expect(info).to_contain_text("0.6 s = 4800 samples at 8000 Hz")
    audio, rate, name = linked_audio(page, "result-0")
    assert rate == RATE and audio.shape == (1, 4800)
    seed = int(page.locator("#seed input").input_value())  # "random" picked it; the field shows it
    assert name == f"a_page_test_tone_seed{seed}.wav"
    expect(info).to_contain_text(f"seed {seed}")
    expect(page.locator("#result-0-picture img")).to_be_visible()

    shot = ROOT / "docs" / "ui.png" if os.environ.get("SAK_UPDATE_SCREENSHOT") else tmp_path / "ui.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 20_000


def test_three_variations_and_one_downloaded(page, tmp_path):
    page.locator("#random-seed input").uncheck()
    fill(page, prompt="three takes", length="0.25", steps="2", variations="3", seed="100")
    generate(page, "seeds 100-102: done")

    takes = []
    for k, seed in enumerate((100, 101, 102)):
        expect(page.locator(f"#result-{k}-info")).to_contain_text(f"2000 samples at 8000 Hz, mono · seed {seed}")
        takes.append(linked_audio(page, f"result-{k}")[0])
    assert not np.array_equal(takes[0], takes[1]), "each variation has its own seed"

    with page.expect_download() as wav:
        page.click("#result-1-wav")
    assert wav.value.suggested_filename == "three_takes_seed101.wav"
    path = tmp_path / wav.value.suggested_filename
    wav.value.save_as(path)
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE and data.shape == (2000, 1)
    np.testing.assert_array_equal(data.T, takes[1])

    with page.expect_download() as flac:
        page.click("#result-2-flac")
    assert flac.value.suggested_filename == "three_takes_seed102.flac"
    path = tmp_path / flac.value.suggested_filename
    flac.value.save_as(path)
    assert sf.info(path).format == "FLAC" and sf.info(path).frames == 2000


def test_an_uploaded_init_audio_with_a_strength(page, ui_server, tmp_path):
    tone = write_tone(tmp_path / "tone.wav", 0.75)  # 16 kHz: the page resamples it to the model's 8 kHz
    fill(page, prompt="a brighter tone", steps="4")
    from_audio(page, "audio to audio")
    page.set_input_files("#input-audio input[type=file]", tone)
    expect(page.locator("#input-note")).to_contain_text("tone.wav: 0.750 s (6000 samples at 8000 Hz)")
    fill(page, strength="0.5")
    generate(page)

    expect(page.locator("#result-0-info")).to_contain_text("6000 samples")  # no length: the input's
    audio, rate, _ = linked_audio(page, "result-0")
    assert rate == RATE and audio.shape == (1, 6000)
    settings = newest_sidecar(ui_server)["settings"]
    assert settings["mode"] == "audio to audio" and settings["strength"] == 0.5
    assert (ui_server.outputs / settings["input_audio"]).read_bytes() == tone.read_bytes()

    # A result sent back as the init audio.
    page.click("#result-0-use")
    expect(page.locator("#mode input[value='audio to audio']")).to_be_checked()
    expect(page.locator("#input-note")).to_contain_text("0.750 s (6000 samples at 8000 Hz)")


def test_a_recorded_init_audio(page, ui_server):
    fill(page, prompt="from the microphone", steps="2", length="0.5")  # a recording may outlast the 1 s window
    from_audio(page, "audio to audio")
    page.click("#input-audio button[aria-label='Record audio']")
    page.locator("#input-audio").get_by_role("button", name="Record", exact=True).click()
    page.wait_for_timeout(1000)
    page.locator("#input-audio").get_by_role("button", name="Stop").first.click()
    expect(page.locator("#input-note")).to_contain_text(re.compile(r"audio\.wav: [\d.]+ s \(\d+ samples at 8000 Hz\)"))
    generate(page)
    audio, _, _ = linked_audio(page, "result-0")
    assert audio.shape == (1, 4000)
    settings = newest_sidecar(ui_server)["settings"]
    assert settings["mode"] == "audio to audio" and settings["input_audio"].endswith("/audio.wav")


def test_bad_input_is_a_message_naming_the_value_and_the_server_lives_on(page, ui_server, tmp_path):
    fill(page, prompt="bad lengths", length="-1", steps="2")
    page.click("#generate")
    error_shown(page, "length: seconds must be a finite number > 0, got '-1'")

    fill(page, length="5")
    page.locator("#loop input").check()  # a loop is one window at most
    page.click("#generate")
    error_shown(page, "loop cannot be combined with long-form generation (seconds_total=5.0 is beyond the window")
    page.locator("#loop input").uncheck()

    fill(page, length="")
    from_audio(page, "inpaint")
    page.set_input_files("#input-audio input[type=file]", write_tone(tmp_path / "short.wav", 0.5))
    expect(page.locator("#input-note")).to_contain_text("0.500 s")
    fill(page, regions="0.2:3")
    page.click("#generate")
    error_shown(page, "region (0.2, 3) ends after the clip, which is 0.5 s long")
    expect(page.locator("#input-note")).to_contain_text("region (0.2, 3) ends after the clip")  # said before Generate

    notes = tmp_path / "notes.wav"
    notes.write_text("these are notes, not audio")
    page.locator("#input-audio button[aria-label='Clear']").click()
    page.set_input_files("#input-audio input[type=file]", notes)
    page.click("#generate")
    error_shown(page, re.compile(r"notes\.wav' cannot be read as audio"))

    assert "Traceback" not in page.content()
    assert ui_server.alive()
    from_audio(page, "text to audio")
    fill(page, length="0.25")
    generate(page)
    expect(page.locator("#result-0-info")).to_contain_text("2000 samples")


def test_the_history_survives_a_reload_and_regenerates_the_same_audio(page, ui_server):
    page.locator("#random-seed input").uncheck()
    fill(page, prompt="kept after a reload", length="0.3", steps="2", seed="7")
    generate(page, "seed 7: done")
    first, _, _ = linked_audio(page, "result-0")

    page.reload()
    page.wait_for_selector("#generate")
    row = page.locator("#history").get_by_role("gridcell", name="kept after a reload").first
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("#viewer-info")).to_contain_text("2400 samples at 8000 Hz, mono · seed 7")
    np.testing.assert_array_equal(linked_audio(page, "viewer")[0], first)

    page.click("#viewer-regenerate")
    expect(page.locator("#status")).to_contain_text("seed 7: done")
    np.testing.assert_array_equal(linked_audio(page, "result-0")[0], first)
    assert newest_sidecar(ui_server)["settings"]["prompt"] == "kept after a reload"


def test_a_long_job_shows_its_progress_queues_the_next_and_cancels(page, browser, ui_server):
    before = len(ui_server.results())
    fill(page, prompt="a long one", length="120", steps="50")  # 160 windows of 50 steps
    page.click("#generate")
    expect(page.locator("#status")).to_contain_text(re.compile(r"step \d+/\d+, [\d.]+ s, about [\d.]+ s left"))

    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    other = context.new_page()
    other.goto(ui_server.url)
    fill(other, prompt="waits its turn", length="0.25", steps="2")
    other.click("#generate")
    expect(other.locator("#status")).to_contain_text("queue: 1/1")

    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text(re.compile("cancel", re.IGNORECASE))
    expect(other.locator("#status")).to_contain_text("done")
    context.close()
    assert len(ui_server.results()) == before + 1, "the cancelled job wrote nothing"


def test_the_next_run_line_follows_the_fields_that_choose_the_unet(student_page, ui_student_server):
    """With a student (`sak ui` of a model that has one): blank Steps and CFG scale sample with it; the line under them
    says so, and says the model's own U-Net at its own steps as soon as CFG scale is set. A typed Steps value is
    sampled as typed, and each sidecar records the U-Net and steps that ran."""
    page, line = student_page, student_page.locator("#next-run")
    expect(line).to_have_text("Next run: 4 steps, the distilled U-Net (guidance 7 baked in)")
    fill(page, cfg="3")
    expect(line).to_contain_text("Next run: 15 steps, the model's own U-Net, CFG scale 3")
    fill(page, cfg="")
    expect(line).to_have_text("Next run: 4 steps, the distilled U-Net (guidance 7 baked in)")

    page.locator("#random-seed input").uncheck()
    fill(page, prompt="blank fields", length="0.25", seed="5")
    generate(page, "seed 5: done")
    settings = newest_sidecar(ui_student_server)["settings"]
    assert (settings["unet"], settings["steps"], settings["cfg"]) == ("distilled", 4, 7.0)

    fill(page, steps="4", seed="6")
    expect(line).to_contain_text("Next run: 4 steps, the model's own U-Net, CFG scale 7")
    generate(page, "seed 6: done")
    settings = newest_sidecar(ui_student_server)["settings"]
    assert (settings["unet"], settings["steps"], settings["cfg"]) == ("base", 4, 7.0)


def click_picture(locator, x: float, y: float) -> None:
    """Click the picture at the pixel ``(x, y)`` of its PNG, wherever and however large the page shows it (as
    Gradio's Image reads a click back: the picture scaled to fit its box, centred, never enlarged)."""
    width, height, natural_width, natural_height = locator.evaluate(
        "img => [img.getBoundingClientRect().width, img.getBoundingClientRect().height, img.naturalWidth,"
        " img.naturalHeight]"
    )
    scale = min(width / natural_width, height / natural_height, 1.0)
    left, top = (width - natural_width * scale) / 2, (height - natural_height * scale) / 2
    locator.click(position={"x": left + x * scale, "y": top + y * scale})


def test_two_clicks_on_the_inputs_waveform_mark_a_region_to_inpaint(page, ui_server, tmp_path):
    from stable_audio_kit.ui.pictures import input_png

    fill(page, prompt="a marked region", steps="2")
    from_audio(page, "inpaint")
    page.set_input_files("#input-audio input[type=file]", write_tone(tmp_path / "marked.wav", 0.5))
    note, picture = page.locator("#input-note"), page.locator("#input-picture img")
    expect(note).to_contain_text("marked.wav: 0.500 s")
    expect(picture).to_be_visible()
    # Where the page's picture of a 0.5 s input has its seconds: the same figure, drawn here.
    axis = input_png(np.zeros((1, RATE // 2), np.float32), RATE, tmp_path / "same.png")
    middle = (axis.top + axis.bottom) / 2

    click_picture(picture, axis.x_at(0.3), middle)
    expect(note).to_contain_text("start 0.3 s: click the end")
    click_picture(picture, axis.left / 2, middle)  # left of the axes: ignored, the start still pending
    expect(note).to_contain_text("outside the waveform: ignored")
    expect(note).to_contain_text("start 0.3 s: click the end")
    click_picture(picture, axis.x_at(0.1), middle)
    expect(page.locator("#regions textarea")).to_have_value("0.1:0.3")
    expect(note).to_contain_text("regenerates 0.1-0.3 s")
    expect(note).not_to_contain_text("click the end")

    generate(page)
    assert newest_sidecar(ui_server)["settings"]["regions"] == [[0.1, 0.3]]
