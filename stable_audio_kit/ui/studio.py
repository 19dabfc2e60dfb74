"""What the page asks of the toolkit, without Gradio: a request's settings checked as ``sak generate`` checks
them, run on the pipeline, delivered and kept.

Every rule is the library's, called as the CLI calls it: the length (:func:`~stable_audio_kit.prompt_lists.
parse_seconds`, :func:`~stable_audio_kit.workflows.bars_length`), the regions
(:func:`~stable_audio_kit.prompt_lists.parse_region`, :func:`~stable_audio_kit.prompt_lists.continuation_regions`),
the loudness (:func:`~stable_audio_kit.delivery.delivery_loudness`, :class:`~stable_audio_kit.delivery.Delivery`),
the seed (:func:`~stable_audio_kit.utils.check_seed`), the sampler
(:class:`~stable_audio_kit.sampling.SamplingSettings`, :func:`~stable_audio_kit.schedulers.swap_scheduler`), the U-Net
(:func:`~stable_audio_kit.sampling.choose_unet`) and every check of the call itself
(:meth:`StableAudioKitPipeline.check_call`). Each result is the ``sak`` command its
sidecar names: variation ``k`` of a request is the request with seed ``seed + k``. A result sampled alone is that
command's file sample for sample; variations that share a pipeline call (:meth:`Studio.calls`, where each comes out
as it does alone) are it to float rounding, about 1e-4 of the peak.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..audio import save_audio
from ..conditioning import parse_prompt
from ..delivery import Delivery, delivery_loudness
from ..prompt_lists import continuation_regions, parse_seconds
from ..sampling import (
    MAX_GROUP_ROWS,
    PIPELINE_UNETS,
    SamplingSettings,
    check_unet_name,
    choose_unet,
    initial_noise,
    rows_sample_together,
)
from ..schedulers import swap_scheduler
from ..utils import check_seed
from ..workflows import bars_length
from .history import MODES, Result, ResultStore, Settings, result_stem
from .pictures import Marks, result_png


class Cancelled(Exception):
    """Raised inside sampling when the user cancels the job."""


@dataclass
class Plan:
    """A request checked against the model: the pipeline's arguments, its delivery and how many windows of
    sampling it takes."""

    settings: Settings
    call: dict[str, Any]
    delivery: Delivery
    windows: int

    @property
    def marks(self) -> Marks:
        """What the result's picture marks: the regions inpainting or continuation regenerates (the ones the
        pipeline takes, a continuation's from :func:`~stable_audio_kit.prompt_lists.continuation_regions`), where a
        continuation's input ends, and a loop. Nothing for text-to-audio and audio-to-audio."""
        regions = tuple((float(a), float(b)) for a, b in self.call.get("regions") or ())  # only with inpaint_audio
        join = regions[0][0] if regions and self.settings.mode == "continue" else None
        return Marks(regenerated=regions, join=join, loop=bool(self.call.get("loop")))


def unet_of(pipe) -> str:
    """``"distilled"`` if ``pipe`` samples with a distilled student, else ``"base"``."""
    return "distilled" if pipe.unet.config.get("distilled_steps") is not None else "base"


class Studio:
    """A loaded pipeline, the outputs folder and the one sampler they share (one job at a time).

    ``pipe`` samples every request; or, given a ``student`` (the same model with its distilled U-Net: ``sak ui
    --unet auto`` on a model that has one), each request samples with the U-Net :meth:`choose_unet` picks."""

    def __init__(self, pipe, store: ResultStore, model: str | None = None, student=None):
        self.pipe = pipe
        self.store = store
        self.model = model  # the --model folder, None for the bundled model
        self.pipes = {unet_of(pipe): pipe}
        if student is not None:
            if (unet_of(pipe), unet_of(student)) != ("base", "distilled"):
                raise ValueError("a student is the distilled U-Net beside the model's own, given as pipe")
            self.pipes["distilled"] = student
        self.own_schedulers = {unet: each.scheduler for unet, each in self.pipes.items()}
        self._lock = threading.Lock()
        for each in self.pipes.values():
            each.set_progress_bar_config(disable=True)

    def choose_unet(self, settings: Settings) -> str:
        """The U-Net ``settings`` samples with: the one it records (a result made again), else the one loaded, or,
        with a student, :func:`~stable_audio_kit.sampling.choose_unet` ``"auto"`` of its steps, guidance, sampler
        and negative prompt (the page has no LoRA)."""
        if settings.unet is not None:
            check_unet_name(settings.unet, PIPELINE_UNETS)
            if settings.unet not in self.pipes:
                raise ValueError(
                    f"this request samples with the {settings.unet} U-Net, which this page has not loaded; start it "
                    f"with sak ui --unet {settings.unet}"
                )
            return settings.unet
        if len(self.pipes) == 1:
            return next(iter(self.pipes))
        return choose_unet(
            "auto",
            True,
            steps=settings.steps,
            scheduler=settings.scheduler,
            guidance_scale=settings.cfg,
            negative_prompt=settings.negative,
        )

    def sampling(self, settings: Settings) -> tuple[str, int, float]:
        """``(unet, steps, cfg)`` that ``settings`` samples with: :meth:`choose_unet`'s U-Net at the steps and guidance
        asked for, that U-Net's own for a ``None``. What :meth:`plan` records, and what the page says the next run
        uses before it runs."""
        unet = self.choose_unet(settings)
        return (unet, *self.pipes[unet].resolve_sampling(settings.steps, settings.cfg))

    def own_sampling(self) -> tuple[int, float]:
        """The steps and guidance of a request that sets neither, nor a sampler or negative prompt."""
        return self.sampling(Settings(prompt=""))[1:]

    # ------------------------------------------------------------------ checks
    def plan(self, settings: Settings) -> Plan:
        """Every check of a request before any work (``ValueError`` naming the value), in the CLI's order: the
        values alone, then the pipeline's own :meth:`check_call` with the arguments the run will use. The plan's
        settings hold the U-Net, steps and guidance the run samples with (the model's own for a ``None``)."""
        unet, steps, cfg = self.sampling(settings)
        pipe = self.pipes[unet]
        s = replace(settings, steps=steps, cfg=cfg, unet=unet)
        if s.mode not in MODES:
            raise ValueError(f"unknown mode {s.mode!r}; valid modes: {list(MODES)}")
        prompt = parse_prompt(s.prompt)
        negative = parse_prompt(s.negative) if s.negative else None
        check_seed(s.seed, "seed")
        seconds = parse_seconds(s.seconds, "length") if s.seconds is not None else None
        if s.bars is not None:
            if seconds is not None:
                raise ValueError("give a length in seconds or a number of bars, not both")
            seconds = bars_length(s.bars, s.bpm, prompt)
        if s.scheduler is not None:  # the CLI's rules for --scheduler: a known name, and none for a student
            SamplingSettings(scheduler=s.scheduler, unet=unet).check()
        options: dict[str, Any] = {}
        source = self.store.input_path(s)
        if s.mode != MODES[0] and source is None:
            raise ValueError(f"{s.mode} needs an input audio: upload or record one")
        if s.mode == "audio to audio":
            options.update(init_audio=source, strength=s.strength)
        elif s.mode == "inpaint":
            options.update(inpaint_audio=source, regions=s.regions)
        elif s.mode == "continue":
            if seconds is None:
                raise ValueError("continue needs a length: the seconds of the whole result, the input included")
            options.update(inpaint_audio=source, regions=continuation_regions(source, seconds))
        if s.loop:
            options["loop"] = True
        delivery = Delivery(
            loudness=delivery_loudness(s.loudness, s.normalize, inpainting="inpaint_audio" in options), loop=s.loop
        )
        if seconds is None and not {"init_audio", "inpaint_audio"} & set(options):
            seconds = pipe.max_seconds
        call = dict(
            prompt=prompt,
            negative_prompt=negative,
            seconds_total=seconds,
            num_inference_steps=s.steps,
            guidance_scale=s.cfg,
            num_waveforms_per_prompt=1,
            bpm=s.bpm,
            key=s.key,
            **options,
        )
        pipe.check_call(**call)
        windows = 1
        if seconds is not None and seconds > pipe.max_seconds:
            from ..longform import plan_long

            # A continuation plans only the windows that reach past its input.
            given = {k: options[k] for k in ("inpaint_audio", "regions") if k in options}
            plan = plan_long(pipe, prompt, negative, seconds, s.steps, s.cfg, 1, "np", s.bpm, s.key, **given)
            windows = len(plan.windows)
        return Plan(s, call, delivery, windows)

    def variations(self, settings: Settings, count: int) -> list[Plan]:
        """``count`` checked requests: ``settings`` with seeds ``seed``, ``seed + 1``, ..."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"variations must be a whole number >= 1, got {count!r}")
        first = self.plan(settings)
        check_seed(settings.seed + count - 1, f"seed + variations - 1 ({settings.seed} + {count - 1})")
        return [first] + [
            replace(first, settings=replace(first.settings, seed=settings.seed + k)) for k in range(1, count)
        ]

    # ------------------------------------------------------------------ running
    def sample_together(self, plan: Plan) -> bool:
        """Whether variations of ``plan`` (the request with other seeds) sampled in one pipeline call come out as each
        does alone, to float rounding (about 1e-4 of the peak): the CLI's rule for the rows of a prompt list
        (:func:`~stable_audio_kit.sampling.rows_sample_together`: a sampler whose steps draw no noise, and float32 or
        no guidance), for every mode within the window but loops. Inpainting and continuation re-noise the kept frames
        from the generator at every step: with one generator a variation (:meth:`run_together`) each draws what it
        draws alone. A loop draws one random shift a step for the whole call from the first generator, and long-form
        samples window after window, so neither shares a call."""
        s, call = plan.settings, plan.call
        pipe = self.pipes[s.unet]
        seconds = call["seconds_total"]
        if call.get("loop") or (seconds is not None and seconds > pipe.max_seconds):
            return False
        own = self.own_schedulers[s.unet]
        scheduler = swap_scheduler(own, s.scheduler) if s.scheduler else own
        settings = SamplingSettings(steps=s.steps, scheduler=s.scheduler, unet=s.unet)
        return rows_sample_together(pipe, settings, s.cfg, str(pipe._execution_device), scheduler=scheduler)

    def calls(self, plans: list[Plan]) -> list[list[Plan]]:
        """The pipeline calls that sample ``plans``, the variations of one request (:meth:`variations`), in order:
        up to :data:`~stable_audio_kit.sampling.MAX_GROUP_ROWS` variations a call where :meth:`sample_together`
        says each comes out as it does alone, else one call each."""
        if len(plans) > 1 and self.sample_together(plans[0]):
            return [plans[k : k + MAX_GROUP_ROWS] for k in range(0, len(plans), MAX_GROUP_ROWS)]
        return [[plan] for plan in plans]

    def run(
        self,
        plan: Plan,
        on_step: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Result:
        """Sample, deliver and keep one checked request. ``on_step(steps_per_window)`` is called after every
        denoising step; setting ``cancel`` stops the job at the next step with :class:`Cancelled`."""
        return self.run_together([plan], on_step, cancel)[0]

    def run_together(
        self,
        plans: list[Plan],
        on_step: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Result]:
        """Sample the variations ``plans`` of one request in one pipeline call (one of :meth:`calls`), each from the
        initial noise its seed gives it alone, then deliver and keep each in turn, in the order given.
        ``on_step(steps_per_window)`` is called once after every denoising step of the call; setting ``cancel``
        stops it at the next step with :class:`Cancelled`, before any of its results is written."""
        import torch

        first = plans[0].settings
        if len(plans) > 1:
            if any(replace(plan.settings, seed=first.seed) != first for plan in plans):
                raise ValueError("only the variations of one request share a pipeline call")
            if len(plans) > MAX_GROUP_ROWS or not self.sample_together(plans[0]):
                raise ValueError(f"these {len(plans)} variations do not share a pipeline call (Studio.calls)")
        pipe, own_scheduler = self.pipes[first.unet], self.own_schedulers[first.unet]
        call = dict(plans[0].call, num_waveforms_per_prompt=len(plans))
        seeds = [plan.settings.seed for plan in plans]
        if len(plans) > 1 and call.get("init_audio") is None and call.get("inpaint_audio") is None:
            # Each variation's own first draw, stacked: what the CLI passes a group of a prompt list.
            frames = pipe.sampled_frames(0.0, call["seconds_total"])
            noise = {"latents": torch.cat([initial_noise(pipe, seed, 1, frames) for seed in seeds])}
        else:
            # The pipeline takes no latents= with an input: a generator a variation, from which the pipeline draws
            # that variation's initial noise, (1, channels, frames), and an inpainting's re-noise of its kept frames
            # at each step, as the variation's own call draws them.
            generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
            noise = {"generator": generators if len(plans) > 1 else generators[0]}

        def callback(pipe, step, timestep, tensors):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled at step {step + 1}")
            if on_step is not None:
                on_step(pipe.num_timesteps)
            return {}

        with self._lock:  # one job on the sampler at a time, whatever the web server does
            if first.scheduler:
                pipe.scheduler = swap_scheduler(own_scheduler, first.scheduler)
            try:
                audios = pipe(**call, **noise, callback_on_step_end=callback).audios
            finally:
                pipe.scheduler = own_scheduler
        return [self.keep(plan, audio, pipe.sample_rate) for plan, audio in zip(plans, audios)]

    def keep(self, plan: Plan, audio, sample_rate: int) -> Result:
        """Deliver the audio ``(channels, samples)`` the pipeline sampled for ``plan`` at ``sample_rate`` and keep
        it as a new result: WAV, FLAC, picture, then the sidecar."""
        s = plan.settings
        result_id, folder = self.store.new_folder()
        delivered, rate = plan.delivery.process(audio, sample_rate)
        result = Result(
            id=result_id,
            folder=folder,
            settings=s,
            stem=result_stem(s.prompt, s.seed),
            sample_rate=rate,
            channels=delivered.shape[0],
            samples=delivered.shape[-1],
            created=ResultStore.now(),
            model=self.model or "(bundled default model)",
        )
        result.command = self.command(s, result.wav.name)
        save_audio(result.wav, delivered, rate)
        save_audio(result.flac, delivered, rate)
        result_png(delivered, rate, result.picture, marks=plan.marks)
        return self.store.finish(result)

    def command(self, settings: Settings, output: str) -> str:
        """The ``sak`` command that makes the same file, sample for sample: every setting of a checked request
        given, the U-Net too (``--unet auto`` would pick the base U-Net for the steps and guidance it names)."""
        s = settings
        source = str(self.store.input_path(s)) if s.input_audio else None
        if s.mode == "inpaint":
            words = ["sak", "inpaint", source, s.prompt] + [f"--region={a!r}:{b!r}" for a, b in s.regions or []]
        elif s.mode == "continue":
            words = ["sak", "continue", source, s.prompt]
        else:
            words = ["sak", "generate", s.prompt]
            if s.mode == "audio to audio":
                words += ["--init-audio", source] + ([] if s.strength is None else ["--strength", repr(s.strength)])
        if s.seconds is not None:
            words += ["--seconds", repr(float(s.seconds))]
        if s.bars is not None:
            words += ["--bars", str(s.bars)]
        if s.loop:
            words.append("--loop")
        if s.negative:
            words += ["--negative", s.negative]
        if s.unet is not None:
            words += ["--unet", s.unet]
        words += ["--steps", str(s.steps), "--cfg", repr(float(s.cfg)), "--seed", str(s.seed)]
        for flag, value in (("--scheduler", s.scheduler), ("--bpm", s.bpm), ("--key", s.key)):
            if value is not None:
                words += [flag, value if isinstance(value, str) else repr(value)]
        if not s.normalize:
            words.append("--no-normalize")
        elif s.loudness is not None:
            words += ["--loudness", repr(float(s.loudness))]
        if self.model:
            words += ["--model", str(Path(self.model).resolve())]
        return shlex.join(words + ["-o", output])


class StepClock:
    """Steps done of a job's total and the time left, for the progress bar. The total is known once sampling
    has started: pipeline calls (one a variation, or fewer where variations share one, :meth:`Studio.calls`) x
    windows x the scheduler's steps per window."""

    def __init__(self, runs: int, windows: int):
        self.runs, self.windows = runs, windows
        self.done = 0
        self.per_window = 0
        self.start = time.monotonic()

    def step(self, per_window: int) -> None:
        self.per_window = per_window
        self.done += 1

    @property
    def total(self) -> int:
        return max(self.done, self.runs * self.windows * self.per_window)

    def describe(self) -> str:
        if not self.done:
            return "starting"
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        return f"step {self.done}/{self.total}, {elapsed:.1f} s, about {left:.1f} s left"
