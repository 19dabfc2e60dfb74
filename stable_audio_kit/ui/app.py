"""The ``sak ui`` page: Gradio Blocks, a thin layer over :class:`~stable_audio_kit.ui.studio.Studio`.

The page turns its fields into :class:`~stable_audio_kit.ui.history.Settings` and shows what comes back;
every rule (lengths, regions, loudness, seeds, samplers, the pipeline's own checks) is the library's, called
as ``sak generate`` calls it. It serves on 127.0.0.1 unless told otherwise, never asks for a share link,
sends no analytics and loads nothing from outside the machine (the default theme's fonts ship with Gradio).

Jobs run one at a time (one queue slot shared by every event that samples); the page shows the queue
position, a progress bar with the step and the time left, and a Cancel button that stops the job at the
next step. Bad input is shown as the library's message naming the value; any other failure as one line,
with the traceback in the server's log only.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

# Before Gradio is imported: no usage statistics, no version check, no Hugging Face telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr

from ..music import MODES as KEY_MODES
from ..music import Key
from ..prompt_lists import parse_seconds
from ..schedulers import SCHEDULER_NAMES
from ..utils import check_seed, random_seed
from ..workflows import DEFAULT_STRENGTH
from .history import MODES, Result, ResultStore, Settings
from .input_panel import InputPanel, split_regions
from .studio import Cancelled, Plan, StepClock, Studio

logger = logging.getLogger(__name__)

MAX_VARIATIONS = 8
HISTORY_HEADERS = ["#", "prompt", "mode", "seed", "seconds", "made"]
# One queue slot for everything that samples: generate and every regenerate button.
SAMPLER = "sampler"


def user_errors(fn: Callable) -> Callable:
    """Show a refused request as the library's message in the page (``gr.Error``), and any other failure as
    one line, its traceback in the server log only. The server carries on either way."""

    def error(err: Exception) -> gr.Error:
        if isinstance(err, (ValueError, OSError)):
            return gr.Error(str(err), duration=None, print_exception=False)
        logger.exception("sak ui: %s failed", fn.__name__)
        message = f"internal error ({type(err).__name__}: {err}); the server log has the details"
        return gr.Error(message, duration=None, print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:
                raise error(err) from None

        return generator

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:
            raise error(err) from None

    return function


def field_number(text: str | None, what: str, kind: type = float) -> float | int | None:
    """A number typed in an optional field (blank: ``None``), as argparse's ``type=float`` reads a flag; whether
    it is a good value is the library's check."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{what} must be a {'whole ' if kind is int else ''}number, got {text!r}") from None


def describe_result(result: Result) -> str:
    """The exact length, the settings and the command that makes the same file, as Markdown."""
    s = result.settings
    channels = {1: "mono", 2: "stereo"}.get(result.channels, f"{result.channels} channels")
    rows = [
        ("prompt", s.prompt),
        ("negative prompt", s.negative),
        ("mode", s.mode),
        ("strength", s.strength if s.mode == "audio to audio" else None),
        ("regions (s)", ", ".join(f"{a:g}-{b:g}" for a, b in s.regions) if s.regions else None),
        ("length asked", f"{s.seconds:g} s" if s.seconds is not None else None),
        ("bars", s.bars),
        ("loop", "yes" if s.loop else None),
        ("U-Net", {"base": "the model's own", "distilled": "its distilled student"}.get(s.unet)),
        ("steps", s.steps),
        ("CFG scale", f"{s.cfg:g}"),
        ("seed", s.seed),
        ("scheduler", s.scheduler or "the model's"),
        ("bpm", f"{s.bpm:g}" if s.bpm is not None else None),
        ("key", s.key),
        ("loudness", "kept" if not s.normalize else f"{s.loudness:g} LUFS" if s.loudness is not None else "default"),
    ]
    table = "\n".join(f"| {name} | {str(value).replace('|', '/')} |" for name, value in rows if value is not None)
    return (
        f"**{result.seconds:.6g} s** = **{result.samples} samples** at {result.sample_rate} Hz, {channels} · seed "
        f"{s.seed} · result {result.id}, {result.created}\n\n"
        f"<details><summary>Settings, and the same file from the command line</summary>\n\n"
        f"| setting | value |\n|---|---|\n{table}\n\n```\n{result.command}\n```\n</details>"
    )


def history_rows(store: ResultStore) -> list[list[Any]]:
    return [
        [r.id, r.settings.prompt, r.settings.mode, r.settings.seed, f"{r.seconds:.3f}", r.created] for r in store.list()
    ]


class ResultView:
    """One result on the page: player, picture, length and settings, downloads, and what to do with it."""

    def __init__(self, name: str, label: str):
        with gr.Group(visible=False, elem_id=name) as self.group:
            self.audio = gr.Audio(
                label=label, type="filepath", interactive=False, buttons=["download"], elem_id=f"{name}-audio"
            )
            self.picture = gr.Image(
                type="filepath", interactive=False, show_label=False, elem_id=f"{name}-picture", buttons=[]
            )
            self.info = gr.Markdown(elem_id=f"{name}-info", padding=True)
            with gr.Row():
                self.wav = gr.DownloadButton("Download WAV", size="sm", elem_id=f"{name}-wav")
                self.flac = gr.DownloadButton("Download FLAC", size="sm", elem_id=f"{name}-flac")
                self.use = gr.Button("Use as init audio", size="sm", elem_id=f"{name}-use")
                self.regenerate = gr.Button("Regenerate", size="sm", elem_id=f"{name}-regenerate")
        self.id = gr.State(None)

    @property
    def outputs(self) -> list:
        return [self.group, self.audio, self.picture, self.info, self.wav, self.flac, self.id]

    @staticmethod
    def show(result: Result | None) -> list:
        if result is None:
            return [gr.update(visible=False), None, None, "", None, None, None]
        files = [str(result.wav), str(result.picture), describe_result(result), str(result.wav), str(result.flac)]
        return [gr.update(visible=True), *files, result.id]


class Page:
    """The page's event handlers, over one :class:`Studio`."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self.store = studio.store
        self.pipe = studio.pipe
        self._cancels: dict[str, threading.Event] = {}
        self.inputs = InputPanel(studio.pipe)  # the input's picture, its regions and the clicks that mark them

    # ------------------------------------------------------------------ fields -> settings
    @staticmethod
    def sampling_fields(steps, cfg, negative, scheduler) -> dict[str, Any]:
        """The settings the fields that choose the U-Net make. A blank field asks nothing: the U-Net's own value, and
        under `sak ui --unet auto` with every one blank, the student; a value typed is the value sampled, as the
        CLI's flag (which then asks for the model's own U-Net, :func:`~stable_audio_kit.sampling.choose_unet`)."""
        return dict(
            steps=field_number(steps, "steps", int),
            cfg=field_number(cfg, "CFG scale"),
            negative=negative or None,
            scheduler=scheduler or None,
        )

    def settings(
        self,
        prompt,
        negative,
        length,
        bars,
        steps,
        cfg,
        seed,
        pick_seed,
        scheduler,
        bpm,
        key,
        loudness,
        normalize,
        loop,
        mode,
        input_audio,
        strength,
        regions,
    ) -> Settings:
        """The request the fields make; the checks are :meth:`Studio.plan`'s."""
        uses_input = mode in MODES[1:] and bool(input_audio)
        return Settings(
            prompt=prompt or "",
            mode=mode,
            seconds=parse_seconds(length, "length") if (length or "").strip() else None,
            bars=field_number(bars, "bars", int),
            seed=random_seed() if pick_seed else check_seed(seed, "seed"),
            **self.sampling_fields(steps, cfg, negative, scheduler),
            bpm=field_number(bpm, "bpm"),
            key=key or None,
            loudness=field_number(loudness, "the loudness target") if normalize else None,
            normalize=bool(normalize),
            loop=bool(loop),
            input_audio=self.store.keep_input(input_audio) if uses_input else None,
            strength=strength if mode == "audio to audio" else None,
            regions=split_regions(regions) if mode == "inpaint" else None,
        )

    # ------------------------------------------------------------------ jobs
    def outputs(self, status: str, seed: Any, results: list[Result]) -> list:
        """Values for ``[status, seed, *every result view, history]``."""
        views = [ResultView.show(results[k] if k < len(results) else None) for k in range(MAX_VARIATIONS)]
        return [status, seed, *(value for view in views for value in view), history_rows(self.store)]

    def run(self, plans: list[Plan], request: gr.Request, progress: gr.Progress) -> Iterator[list]:
        """Run checked requests, the variations of one request, in the pipeline calls :meth:`Studio.calls` makes of
        them, one after another, showing each call's results as they come."""
        session = request.session_hash
        cancel = self._cancels[session] = threading.Event()
        calls = self.studio.calls(plans)
        clock = StepClock(len(calls), plans[0].windows)
        base_seed = plans[0].settings.seed
        seeds = f"seed {base_seed}" if len(plans) == 1 else f"seeds {base_seed}-{base_seed + len(plans) - 1}"

        def on_step(per_window: int) -> None:
            clock.step(per_window)
            progress((clock.done, clock.total), desc=clock.describe(), unit="steps")

        results: list[Result] = []
        progress(0.0, desc="starting")
        try:
            for call in calls:
                results += self.studio.run_together(call, on_step=on_step, cancel=cancel)
                done = f"{len(results)} of {len(plans)} done" if len(results) < len(plans) else "done"
                yield self.outputs(f"{seeds}: {done}", base_seed, results)
        except Cancelled:
            kept = f"; the {len(results)} finished result(s) are kept" if results else ""
            yield self.outputs(f"{seeds}: cancelled at step {clock.done}/{clock.total}{kept}", base_seed, results)
        finally:
            if self._cancels.get(session) is cancel:
                del self._cancels[session]

    @user_errors
    def generate(
        self,
        prompt,
        negative,
        length,
        bars,
        steps,
        cfg,
        seed,
        pick_seed,
        scheduler,
        bpm,
        key,
        loudness,
        normalize,
        loop,
        mode,
        input_audio,
        strength,
        regions,
        variations,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008 (how Gradio hands a progress bar to a function)
    ):
        settings = self.settings(
            prompt,
            negative,
            length,
            bars,
            steps,
            cfg,
            seed,
            pick_seed,
            scheduler,
            bpm,
            key,
            loudness,
            normalize,
            loop,
            mode,
            input_audio,
            strength,
            regions,
        )
        plans = self.studio.variations(settings, variations)
        yield from self.run(plans, request, progress)

    @user_errors
    def regenerate(self, result_id, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        if result_id is None:
            raise ValueError("no result to regenerate")
        plan = self.studio.plan(self.store.get(result_id).settings)
        yield from self.run([plan], request, progress)

    def cancel(self, request: gr.Request) -> str:
        event = self._cancels.get(request.session_hash)
        if event is None:
            return "Nothing to cancel."
        event.set()
        return "Cancelled: the job stops at its next step; the results it finished are kept."

    # ------------------------------------------------------------------ small events
    @user_errors
    def use_as_init(self, result_id):
        if result_id is None:
            raise ValueError("no result to use")
        result = self.store.get(result_id)
        return MODES[1], str(result.wav), gr.update(open=True)

    @user_errors
    def select(self, evt: gr.SelectData):
        row = evt.row_value or []
        return ResultView.show(self.store.get(str(row[0]))) if row else ResultView.show(None)

    def history(self) -> list[list[Any]]:
        return history_rows(self.store)

    @staticmethod
    def mode_fields(mode):
        return gr.update(visible=mode == MODES[1]), gr.update(visible=mode == MODES[2])

    def next_run(self, steps, cfg, negative, scheduler) -> str:
        """The U-Net, steps and guidance the next Generate samples with, as the fields stand (:meth:`Studio.sampling`,
        so :func:`~stable_audio_kit.sampling.choose_unet` decides), or what is wrong with them."""
        try:
            settings = Settings(prompt="", **self.sampling_fields(steps, cfg, negative, scheduler))
            unet, steps, cfg = self.studio.sampling(settings)
            self.studio.pipes[unet].check_sampling(steps, cfg, settings.negative)
        except ValueError as err:
            return f"Next run: **{err}**"
        if unet == "distilled":
            return f"Next run: **{steps} steps, the distilled U-Net** (guidance {cfg:g} baked in)"
        line = f"Next run: **{steps} steps, the model's own U-Net**, CFG scale {cfg:g}"
        if "distilled" in self.studio.pipes:
            own = self.studio.pipes["distilled"].resolve_sampling()[0]
            line += f" (with steps, CFG scale, scheduler and negative prompt blank: the distilled U-Net, {own} steps)"
        return line

    @staticmethod
    def loudness_field(normalize):
        return gr.update(interactive=True) if normalize else gr.update(interactive=False, value="")


def model_summary(studio: Studio) -> str:
    pipe, model = studio.pipe, studio.model
    channels = {1: "mono", 2: "stereo"}.get(pipe.audio_channels, f"{pipe.audio_channels} channels")
    inputs = ", ".join(pipe.projection.describe())
    student = ""
    if "distilled" in studio.pipes:
        steps, cfg = studio.pipes["distilled"].resolve_sampling()
        student = f" U-Net: its distilled student, {steps} steps with guidance {cfg:g} baked in"
        if "base" in studio.pipes:
            student += (
                ", while steps, CFG scale, scheduler and negative prompt are left blank; with any of them "
                "set, the model's own U-Net"
            )
        student += "."
    return (
        f"## stable-audio-kit\n{model or 'the bundled demo model'}: {pipe.sample_rate} Hz {channels}, "
        f"a window of {pipe.max_seconds:.3f} s (longer lengths are generated window after window). "
        f"Conditioning: {inputs}.{student}"
    )


def build_app(studio: Studio) -> gr.Blocks:
    """The page for ``studio``'s model and outputs folder (queue set up; not launched)."""
    page = Page(studio)
    pipe = studio.pipe
    overrides = pipe.projection.overrides
    window = pipe.max_seconds
    key_choices = [("the prompt's", "")] + [(Key(t, m).name,) * 2 for m in KEY_MODES for t in range(12)]
    scheduler_choices = [(f"the model's ({type(pipe.scheduler).__name__})", "")] + [(n, n) for n in SCHEDULER_NAMES]
    with gr.Blocks(title="stable-audio-kit", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(model_summary(studio))
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=380):
                prompt = gr.Textbox(
                    label="Prompt", lines=2, placeholder="a calm piano melody in C major at 80 bpm", elem_id="prompt"
                )
                negative = gr.Textbox(label="Negative prompt", placeholder="optional", elem_id="negative")
                with gr.Row():
                    length = gr.Textbox(
                        label="Length (s)",
                        placeholder=f"{window:.3f}",
                        info=f"blank: the window, {window:.3f} s (or the input's length); longer is long-form",
                        elem_id="length",
                    )
                    variations = gr.Slider(
                        1, MAX_VARIATIONS, value=1, step=1, precision=0, label="Variations", elem_id="variations"
                    )
                # Blank, as the CLI's flags left out: the U-Net's own values (and the student, if every field that
                # chooses the U-Net is blank); the line below says what the next run samples with, as they change.
                # Textboxes: Gradio's Number shows and sends 0 for no value.
                with gr.Row():
                    steps = gr.Textbox(
                        label="Steps", placeholder="default", info="blank: the U-Net's own", elem_id="steps"
                    )
                    cfg = gr.Textbox(
                        label="CFG scale",
                        placeholder="default",
                        info="blank: the U-Net's own; <= 1: off",
                        elem_id="cfg",
                    )
                next_run = gr.Markdown(page.next_run("", "", "", ""), elem_id="next-run")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=0, precision=0, info="variation k: seed + k", elem_id="seed")
                    pick_seed = gr.Checkbox(
                        label="random seed", value=True, info="the seed used is shown", elem_id="random-seed"
                    )
                with gr.Row():
                    scheduler = gr.Dropdown(scheduler_choices, value="", label="Scheduler", elem_id="scheduler")
                    # Only for a model whose conditioning reads them (a beat grid, a key input).
                    bpm = gr.Textbox(label="bpm", placeholder="the prompt's", visible="bpm" in overrides, elem_id="bpm")
                    key = gr.Dropdown(key_choices, value="", label="Key", visible="key" in overrides, elem_id="key")
                with gr.Row():
                    loudness = gr.Textbox(
                        label="Loudness target (LUFS)",
                        placeholder="-14",
                        info="blank: -14 (inpainting, continuing: the input's level)",
                        elem_id="loudness",
                    )
                    normalize = gr.Checkbox(label="normalise loudness", value=True, elem_id="normalize")
                with gr.Row():
                    loop = gr.Checkbox(label="seamless loop", value=False, elem_id="loop")
                    bars = gr.Textbox(
                        label="Bars (4/4)",
                        info="instead of a length, at the bpm or the prompt's tempo",
                        elem_id="bars",
                    )
                with gr.Accordion("From audio", open=False, elem_id="from-audio") as from_audio:
                    mode = gr.Radio(list(MODES), value=MODES[0], label="Mode", elem_id="mode")
                    input_audio = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Input audio",
                        buttons=[],
                        elem_id="input-audio",
                    )
                    strength = gr.Slider(
                        0.0,
                        1.0,
                        value=DEFAULT_STRENGTH,
                        step=0.05,
                        label="Strength",
                        info="0 keeps the input, 1 ignores it",
                        visible=False,
                        elem_id="strength",
                    )
                    regions = gr.Textbox(
                        label="Regions to regenerate",
                        placeholder="2.0:3.5, 6:7",
                        info="START:END in seconds, as sak inpaint --region",
                        visible=False,
                        elem_id="regions",
                    )
                    input_picture = gr.Image(
                        type="filepath",
                        interactive=False,
                        show_label=False,
                        visible=False,
                        buttons=[],
                        elem_id="input-picture",
                    )
                    input_note = gr.Markdown(elem_id="input-note")
                    marking = gr.State(None)
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                status = gr.Markdown("Ready.", min_height=60, elem_id="status", padding=True)
            with gr.Column(scale=3, min_width=420):
                gr.Markdown("### Results\nEach result: its player, waveform and spectrogram, exact length, settings.")
                views = [ResultView(f"result-{k}", f"Result {k + 1}") for k in range(MAX_VARIATIONS)]
        with gr.Accordion("History", open=True, elem_id="history-section"):
            gr.Markdown(f"Every result, kept in `{studio.store.root}`. Select one to hear it again.")
            history = gr.Dataframe(
                headers=HISTORY_HEADERS,
                datatype=["str", "str", "str", "number", "str", "str"],
                value=page.history(),
                interactive=False,
                wrap=True,
                max_height=320,
                elem_id="history",
            )
            viewer = ResultView("viewer", "From the history")

        fields = [
            prompt,
            negative,
            length,
            bars,
            steps,
            cfg,
            seed,
            pick_seed,
            scheduler,
            bpm,
            key,
            loudness,
            normalize,
            loop,
            mode,
            input_audio,
            strength,
            regions,
        ]
        job_outputs = [status, seed, *(c for view in views for c in view.outputs), history]
        sampling = dict(outputs=job_outputs, show_progress_on=[status], concurrency_id=SAMPLER)
        jobs = [generate.click(page.generate, inputs=[*fields, variations], **sampling)]
        for view in [*views, viewer]:
            jobs.append(view.regenerate.click(page.regenerate, inputs=[view.id], **sampling))
            view.use.click(page.use_as_init, inputs=[view.id], outputs=[mode, input_audio, from_audio], queue=False)
        cancel.click(page.cancel, outputs=[status], queue=False, cancels=jobs)

        # What does not sample answers at once, outside the queue, while a job runs.
        history.select(page.select, outputs=viewer.outputs, queue=False)
        demo.load(page.history, outputs=[history], queue=False)
        mode.change(page.mode_fields, inputs=[mode], outputs=[strength, regions], queue=False)
        normalize.change(page.loudness_field, inputs=[normalize], outputs=[loudness], queue=False)
        gr.on(
            [steps.change, cfg.change, negative.change, scheduler.change],
            page.next_run,
            inputs=[steps, cfg, negative, scheduler],
            outputs=[next_run],
            show_progress="hidden",
            queue=False,
        )
        gr.on(
            [input_audio.change, mode.change, regions.change, length.change],
            page.inputs.preview,
            inputs=[input_audio, mode, regions, length, marking],
            outputs=[input_picture, input_note, marking],
            show_progress="hidden",
            queue=False,
        )
        input_picture.select(
            user_errors(page.inputs.mark),
            inputs=[input_audio, mode, regions, length, marking],
            outputs=[regions, input_picture, input_note, marking],
            show_progress="hidden",
            queue=False,
        )
    demo.queue(default_concurrency_limit=1, api_open=False)
    return demo
