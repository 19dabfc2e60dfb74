"""Text-to-audio pipeline with timing conditioning, in diffusers' conventions."""

from __future__ import annotations

import inspect

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from .conditioning import (
    Conditioning,
    ConditioningRequest,
    ModelFacts,
    encode_text,
    max_bpm,
    unconditional,
)
from .assembly import (  # noqa: F401
    DEFAULT_MODEL_DIR,
    adopt_legacy_inputs,
    build_pipeline,
    check_model_dir,
    write_loader_file,
)
from .objective import cfg_combine
from .pipeline_checks import CallChecks
from .precision import autocast
from .utils import check_finite_number

# diffusers loads a saved component only from a module this process has already imported, and the package
# __init__ files import nothing until a name is used: import the modules model_index.json files name.
from .conditioning import projection as _projection  # noqa: F401
from .unet import unet_1d_condition as _unet  # noqa: F401
from .vae import autoencoder as _autoencoder  # noqa: F401
from .vae import spectral as _spectral  # noqa: F401
from .workflows import (
    LOOP_CROSSFADE_SECONDS,
    Workflow,
    assemble_inpainted,
    circular_resample,
    is_schedule,
    loop_period,
    roll_inputs,
)

logger = logging.getLogger(__name__)

# Seconds of latents decoded after the end of the output (see StableAudioKitPipeline.decode_context_frames).
DECODE_CONTEXT_SECONDS = 1.0


class StableAudioKitPipeline(CallChecks, DiffusionPipeline):
    """Text-to-audio with timing conditioning (Stable Audio 1.0).

    Components:
        vae: :class:`stable_audio_kit.vae.AudioVAE` (diffusers ``AutoencoderOobleck``) or
            :class:`stable_audio_kit.vae.SpectralAudioVAE`.
        text_encoder: transformers ``ClapTextModelWithProjection`` (frozen).
        tokenizer: the CLAP (RoBERTa) tokenizer.
        projection: :class:`stable_audio_kit.conditioning.ConditioningProjection`.
        unet: :class:`stable_audio_kit.unet.UNet1DConditionModel`.
        scheduler: any diffusers scheduler configured for ``v_prediction``.

    The U-Net denoises the latent frames the requested audio covers plus ``tail_seconds`` after it (at most
    its window of ``unet.config.sample_size`` frames), so a short clip costs less than a long one; the decoded
    audio is trimmed to exactly ``round(seconds_total * sample_rate)`` samples. What the U-Net is
    conditioned on is the projection's list of inputs (:mod:`stable_audio_kit.conditioning`).
    """

    model_cpu_offload_seq = "text_encoder->projection->unet->vae"

    def __init__(self, vae, text_encoder, tokenizer, projection, unet, scheduler):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            projection=projection,
            unet=unet,
            scheduler=scheduler,
        )
        adopt_legacy_inputs(projection, unet)
        self._check_components()

    # ------------------------------------------------------------------ model facts
    def _check_components(self) -> None:
        """Refuse a set of components that cannot work together, naming the mismatch."""
        problems = []
        if self.projection.channel_count != self.unet.extra_channels:
            problems.append(
                f"the conditioning inputs {self.projection.routes['input_channels']} give "
                f"{self.projection.channel_count} input channels but the U-Net takes {self.unet.extra_channels}"
            )
        if self.projection.film_dim != self.unet.film_dim:
            problems.append(
                f"the conditioning inputs {self.projection.routes['film']} give {self.projection.film_dim} FiLM "
                f"features but the U-Net takes {self.unet.film_dim}"
            )
        latent = self.vae.latent_channels
        if self.unet.config.in_channels != latent:
            problems.append(f"unet.in_channels={self.unet.config.in_channels} but the VAE has {latent} latent channels")
        out_channels = self.unet.config.out_channels or self.unet.config.in_channels
        if out_channels != latent:
            problems.append(f"unet.out_channels={out_channels} but the VAE has {latent} latent channels")
        if self.projection.config.conditioning_dim != self.unet.config.cross_attention_dim:
            problems.append(
                f"projection.conditioning_dim={self.projection.config.conditioning_dim} but "
                f"unet.cross_attention_dim={self.unet.config.cross_attention_dim}"
            )
        if self.projection.global_dim != self.unet.config.global_cond_dim:
            problems.append(
                f"projection gives a global vector of {self.projection.global_dim} but "
                f"unet.global_cond_dim={self.unet.config.global_cond_dim}"
            )
        if self.projection.config.text_encoder_dim != self.text_encoder.config.hidden_size:
            problems.append(
                f"projection.text_encoder_dim={self.projection.config.text_encoder_dim} but the text encoder's "
                f"hidden size is {self.text_encoder.config.hidden_size}"
            )
        if getattr(self.scheduler.config, "prediction_type", "v_prediction") != "v_prediction":
            problems.append(
                f"scheduler.prediction_type={self.scheduler.config.prediction_type!r}, expected 'v_prediction'"
            )
        if problems:
            raise ValueError("incompatible pipeline components: " + "; ".join(problems))

    @property
    def sample_rate(self) -> int:
        return int(self.vae.config.sampling_rate)

    @property
    def audio_channels(self) -> int:
        return int(self.vae.config.audio_channels)

    @property
    def window_samples(self) -> int:
        return int(self.unet.config.sample_size) * int(self.vae.hop_length)

    @property
    def decode_context_frames(self) -> int:
        """Latent frames decoded after the last one the output needs: :data:`DECODE_CONTEXT_SECONDS`, more than
        the decoder's receptive field, so the output is what decoding every sampled frame gives (measured on the
        bundled model: identical, or within 1e-4 of its RMS for clips under 1 s)."""
        return -(-round(DECODE_CONTEXT_SECONDS * self.sample_rate) // int(self.vae.hop_length))

    @property
    def max_seconds(self) -> float:
        """The longest ``seconds_total`` this model can generate: its window."""
        return self.window_samples / self.sample_rate

    @property
    def model_facts(self) -> ModelFacts:
        """What the conditioning inputs need to know of this model."""
        return ModelFacts(
            sample_rate=self.sample_rate,
            hop_length=int(self.vae.hop_length),
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            text_hidden_layer=self.projection.config.text_hidden_layer,
        )

    @property
    def max_bpm(self) -> float:
        """The fastest tempo a beat grid can carry: two latent frames a beat (the frame rate's Nyquist limit)."""
        return max_bpm(self.model_facts)

    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the window being sampled (diffusers' convention, for ``callback_on_step_end``): what
        the scheduler makes of ``num_inference_steps``, after audio-to-audio's ``strength``."""
        return getattr(self, "_num_timesteps", 0)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path | None = None, **kwargs):
        """Load a pipeline directory; with no path, the bundled demo model. Never touches the network."""
        path = Path(pretrained_model_name_or_path) if pretrained_model_name_or_path is not None else DEFAULT_MODEL_DIR
        check_model_dir(path)
        kwargs.setdefault("local_files_only", True)
        if "torch_dtype" not in kwargs:
            # Weights may be stored in half precision to keep a model small; compute in fp32 unless asked.
            kwargs.setdefault("dtype", torch.float32)
        return super().from_pretrained(str(path), **kwargs)

    def save_pretrained(self, save_directory: str | Path, *args, **kwargs) -> None:
        """diffusers' ``save_pretrained``, plus the one-line file that lets diffusers' generic loader,
        ``DiffusionPipeline.from_pretrained(dir, trust_remote_code=True)``, load the folder
        (:func:`~stable_audio_kit.assembly.write_loader_file`)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        write_loader_file(save_directory, type(self).__name__)

    @classmethod
    def load_config(cls, *args, **kwargs):
        """diffusers' ``load_config``; model_index.json's ``_class_name`` given as ``[file, class]`` (for the
        generic loader) is read as the class, so loading with this class never imports the file."""
        out = super().load_config(*args, **kwargs)
        config = out[0] if isinstance(out, tuple) else out
        if isinstance(config.get("_class_name"), (list, tuple)):
            config["_class_name"] = config["_class_name"][-1]
        return out

    # ------------------------------------------------------------------ LoRA adapters (stable_audio_kit.lora)
    def load_lora_weights(
        self, pretrained_model_name_or_path: str | Path, adapter_name: str | None = None, scale: float = 1.0
    ) -> str:
        """Load a LoRA adapter folder (``sak export`` of a LoRA run) as ``adapter_name`` (default ``default_<n>``)
        at ``scale``; adapters loaded before stay active beside it. Returns the adapter's name.

        Raises ``ValueError`` if the adapter was trained on other base weights than this pipeline's (the message
        names both sha256 hashes); the pipeline is then unchanged.
        """
        from .lora import load_adapter

        return load_adapter(self, pretrained_model_name_or_path, adapter_name, scale)

    def set_adapters(
        self,
        adapter_names: str | list[str],
        weights: float | list[float] | None = None,
        adapter_weights: float | list[float] | None = None,
    ) -> None:
        """Make ``adapter_names`` the active adapters, each at its weight (default 1.0); other loaded adapters stay
        loaded, inactive. ``adapter_weights`` is the name diffusers' pipelines give ``weights``."""
        from .lora import activate

        if weights is not None and adapter_weights is not None:
            raise ValueError("give weights or adapter_weights, not both")
        activate(self, adapter_names, weights if weights is not None else adapter_weights)

    def unload_lora_weights(self) -> None:
        """Remove every adapter: the pipeline computes exactly what it did before the first was loaded."""
        from .lora import unload

        unload(self)

    # ------------------------------------------------------------------ steps
    def encode_prompt(
        self, prompts: list[str], device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLAP token states ``(B, L, hidden)`` and mask ``(B, L)`` from the configured layer."""
        device = device or self._execution_device
        return encode_text(
            self.text_encoder,
            self.tokenizer,
            prompts,
            hidden_layer=self.projection.config.text_hidden_layer,
            device=device,
        )

    def encode_conditioning(self, request: ConditioningRequest, device: torch.device | None = None) -> Conditioning:
        """The U-Net's conditioning for a request: context, global vector, channel and FiLM inputs."""
        device = device or self._execution_device
        return self.projection(self.projection.features(request, self.model_facts, device))

    def prepare_latents(
        self,
        batch_size: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
        frames: int | None = None,
    ) -> torch.Tensor:
        """Initial noise ``(B, latent_channels, frames)`` (default: the window) scaled for the scheduler."""
        if latents is None:
            latents = self.initial_noise(batch_size, generator, frames, dtype=dtype, device=device)
        else:
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

    def initial_noise(
        self,
        batch_size: int,
        generator: torch.Generator | list[torch.Generator] | None,
        frames: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The noise a call draws to start from, before the scheduler's ``init_noise_sigma``: ``(B, latent_channels,
        frames)`` in one draw from ``generator``. Passed back as ``latents=`` it starts the same sample (a generator's
        draws of two halves are not those of the whole: torch fills normal values 16 at a time)."""
        shape = (batch_size, self.unet.config.in_channels, frames or self.unet.config.sample_size)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch_size} waveforms")
        return randn_tensor(shape, generator=generator, device=torch.device(device or "cpu"), dtype=dtype)

    def sample(
        self,
        request: ConditioningRequest,
        negative_request: ConditioningRequest | None,
        workflow: Workflow,
        num_inference_steps: int | None,
        guidance_scale: float | None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        callback_on_step_end: Callable[[Any, int, Any, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        precision: str = "auto",
    ) -> torch.Tensor:
        """Steps 2-5 of a call for validated requests: conditioning, timesteps, initial latents and the
        denoising loop over ``request.frames`` latent frames. Returns the final latents ``(B, D, frames)``.
        Long-form generation calls it once a window. The U-Net runs in ``precision``
        (:mod:`stable_audio_kit.precision`); everything else in float32. ``None`` steps or guidance are the model's
        own (:meth:`resolve_sampling`); a distilled student runs one conditional forward a step."""
        device = self._execution_device
        num_inference_steps, guidance_scale = self.resolve_sampling(num_inference_steps, guidance_scale)
        do_cfg = self.runs_unconditional(guidance_scale)
        batch = request.batch * num_waveforms_per_prompt

        # 2. Conditioning, each prompt read once; the unconditional half follows the one CFG rule.
        cond = self.encode_conditioning(request, device).repeat_interleave(num_waveforms_per_prompt)
        if do_cfg:
            negative = None
            if negative_request is not None:
                negative = self.encode_conditioning(negative_request, device)
                negative = negative.repeat_interleave(num_waveforms_per_prompt)
            # One batched forward: [unconditional; conditional].
            cond = Conditioning.cat([unconditional(cond, negative), cond])
        unet_inputs = cond.unet_inputs()

        # 3. Timesteps; audio-to-audio starts part of the way down.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        dtype = cond.encoder_hidden_states.dtype
        frames = int(request.frames)
        known = None
        if workflow.audio is not None:  # the input over the window, cut to the frames sampled
            known = self.encode_audio(workflow.audio, batch, device, dtype)[..., :frames]
        if workflow.strength is not None:
            timesteps = self.strength_timesteps(timesteps, workflow.strength, num_inference_steps)
        self._num_timesteps = len(timesteps)

        # A sampler that adds noise at each step (DDPM) draws it from the call's generator, as diffusers' pipelines do.
        step_kwargs = (
            {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        )

        # 4. Initial noise over the frames sampled, or the input noised to the first step.
        latents = self.prepare_latents(batch, dtype, device, generator, latents, frames=frames)
        if workflow.strength is not None and workflow.strength < 1.0:
            if len(timesteps) == 0:
                latents = known
            else:
                latents = self.scheduler.add_noise(known, latents / self.scheduler.init_noise_sigma, timesteps[:1])
        keep = None
        if workflow.regenerate is not None:
            keep = ~workflow.regenerate.to(device)[None, None, :frames]

        # 5. Denoising loop.
        # The session keeps autocast's bfloat16 copies of the weights from one step to the next.
        session, step = autocast(precision, device.type)
        with session:
            for i, t in enumerate(self.progress_bar(timesteps)):
                shift = 0
                if workflow.loop:  # a random circular shift each step, so no frame is the loop's edge for long
                    shift = int(torch.randint(latents.shape[-1], (), generator=_first(generator)))
                step_inputs = unet_inputs if not shift else roll_inputs(unet_inputs, shift)
                model_input = latents.roll(shift, -1) if shift else latents
                model_input = torch.cat([model_input] * 2) if do_cfg else model_input
                model_input = self.scheduler.scale_model_input(model_input, t)
                with step:
                    noise_pred = self.unet(model_input, t, **step_inputs).sample.to(dtype)
                if do_cfg:
                    uncond_pred, cond_pred = noise_pred.chunk(2)
                    noise_pred = cfg_combine(uncond_pred, cond_pred, guidance_scale)
                if shift:
                    noise_pred = noise_pred.roll(-shift, -1)
                latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
                if keep is not None:
                    # The kept frames: the input, noised to the level the next step starts from (clean at the end).
                    if i + 1 < len(timesteps):
                        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=dtype)
                        known_now = self.scheduler.add_noise(known, noise, timesteps[i + 1 : i + 2])
                    else:
                        known_now = known
                    latents = torch.where(keep, known_now, latents)
                if callback_on_step_end is not None:
                    local = {"latents": latents, "noise_pred": noise_pred}
                    chosen = {k: local[k] for k in callback_on_step_end_tensor_inputs}
                    outputs = callback_on_step_end(self, i, t, chosen)
                    latents = outputs.pop("latents", latents)

        return latents

    @torch.no_grad()
    def encode_audio(self, audio: np.ndarray, batch: int, device, dtype) -> torch.Tensor:
        """Scaled latents ``(batch, D, frames)`` of a window of audio, ``(channels, samples)`` for every row or
        ``(batch, channels, samples)`` row by row, encoded as training encodes."""
        waveform = torch.from_numpy(np.ascontiguousarray(audio)).to(device=device, dtype=torch.float32)
        waveform = waveform[None] if waveform.ndim == 2 else waveform
        latents = self.vae.encode(waveform).latent_dist.mode() * getattr(self.vae.config, "scaling_factor", 1.0)
        return latents.to(dtype).expand(batch, -1, -1).contiguous()

    def strength_timesteps(self, timesteps: torch.Tensor, strength: float, steps: int) -> torch.Tensor:
        """The scheduler's own timesteps from the noise level ``strength`` picks (diffusers' img2img rule):
        the last ``int(steps * strength)`` of ``steps``."""
        start = steps - min(int(steps * strength), steps)
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * self.scheduler.order)
        return timesteps[start * self.scheduler.order :]

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D, frames)`` to the whole window of audio ``(B, channels, frames * hop)``."""
        scaling = getattr(self.vae.config, "scaling_factor", 1.0)
        return self.vae.decode(latents / scaling).sample

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        seconds_start: float = 0.0,
        seconds_total: float | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, Any, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers convention)
        bpm: float | None = None,
        key: str | None = None,
        overrides: dict[str, Any] | None = None,
        init_audio: str | Path | np.ndarray | torch.Tensor | None = None,
        strength: float | None = None,
        inpaint_audio: str | Path | np.ndarray | torch.Tensor | None = None,
        regions: list[tuple[float, float]] | None = None,
        input_sample_rate: int | None = None,
        loop: bool = False,
        overlap_seconds: float | None = None,
        tail_seconds: float | None = None,
        precision: str = "auto",
    ) -> AudioPipelineOutput | tuple:
        """Generate audio of exactly ``seconds_total`` seconds for each prompt.

        Returns ``AudioPipelineOutput(audios=...)`` with ``audios`` of shape
        ``(len(prompts) * num_waveforms_per_prompt, channels, round(seconds_total * sample_rate))``
        (numpy float32 or torch), or the final latents ``(B, D, frames)`` for ``output_type="latent"``.
        ``num_inference_steps`` and ``guidance_scale`` default to the model's own
        (:data:`~stable_audio_kit.sampling.DEFAULT_STEPS`, :data:`~stable_audio_kit.sampling.DEFAULT_GUIDANCE_SCALE`);
        ``guidance_scale <= 1`` switches classifier-free guidance off.

        A distilled student U-Net (:mod:`stable_audio_kit.distillation`, :func:`~stable_audio_kit.load_pipeline`
        with ``unet="distilled"``) samples in exactly its ``distilled_steps`` with its guidance baked into one
        conditional forward a step: it refuses other steps or guidance, a ``negative_prompt``, and a scheduler
        other than :func:`~stable_audio_kit.distillation.student_scheduler`'s (``ValueError`` before any work).

        Speed (:mod:`stable_audio_kit.precision`, README "Speed"): the U-Net denoises only the latent frames
        the audio covers plus ``tail_seconds`` after it (default
        :data:`~stable_audio_kit.pipeline_checks.TAIL_SECONDS`; a value at least the window's length samples the
        whole window, as Stable Audio does). ``latents=`` may hold any frame count from the audio's to the
        window's, and sets it. ``precision`` is ``"auto"`` (bfloat16 autocast on a CPU that computes it
        natively, else float32), ``"bf16"`` or ``"fp32"``.

        A model with a beat grid (the ``beat_grid`` input) plays at ``bpm``, or else at the tempo each
        prompt names ("at 96 bpm"). The tempo belongs to the prompt: the unconditional half of guidance gets
        the negative prompt's tempo, or none, so guidance pushes towards the requested tempo too. Likewise
        a model with the ``key`` input plays in ``key`` ("F# minor", "Bb major"), or else in the key each
        prompt names. ``overrides`` gives any conditioning input its value by the name it reads
        (``{"bpm": 120}``; ``bpm=`` and ``key=`` are shorthands), for every prompt. Prompts may be strings or
        :class:`~stable_audio_kit.conditioning.ParsedPrompt`.

        Workflows (:mod:`stable_audio_kit.workflows`):

        * **Audio-to-audio**: ``init_audio`` (a waveform at ``input_sample_rate``, default the model's, or a
          file) is encoded and noised to the level ``strength`` picks on the scheduler's own timesteps
          (SDEdit): 0 returns the input through the VAE, 1 ignores it. The length is ``seconds_total``, or
          the input's when none is given.
        * **Inpainting**: ``inpaint_audio`` with ``regions=[(start_s, end_s), ...]`` regenerates only those
          regions. At every step the latent frames outside them are replaced by the input's latents noised
          to that step's level; the output copies the input sample for sample outside the regions, with a
          20 ms equal-power crossfade inside each region at each border. Continuation is inpainting of a
          tail: the input padded with silence to ``seconds_total`` and ``regions=[(input_seconds, total)]``.
        * **Long-form**: ``seconds_total`` beyond the window samples window after window, each continuing
          the previous one's last ``overlap_seconds`` (default a quarter of the window) by inpainting, with
          ``seconds_start``/``seconds_total`` telling each window where it is. ``prompt`` may then be a
          schedule ``[("rain on a tin roof", 20), ("thunder, heavy rain", 15)]`` whose lengths add up to
          the whole (story mode). A continuation beyond the window is long-form after the kept input: only
          the windows that reach past it are sampled, the first keeping up to ``window - overlap`` of it
          (:func:`~stable_audio_kit.workflows.plan_windows`); the input must be shorter than ``seconds_total``,
          the one region must run to the end, and a prompt schedule is refused.
        * **Loops**: ``loop=True`` denoises a whole number of latent frames circularly (the latents are
          rolled by a random offset at every step) and decodes them circularly, so the end flows into the
          start; the period is then resampled (Fourier) to exactly ``seconds_total``.
        """
        if is_schedule(prompt) or (seconds_total is not None and _number(seconds_total) > self.max_seconds):
            from .longform import generate_long

            return generate_long(
                self,
                prompt,
                negative_prompt=negative_prompt,
                seconds_total=seconds_total,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                num_waveforms_per_prompt=num_waveforms_per_prompt,
                generator=generator,
                output_type=output_type,
                return_dict=return_dict,
                bpm=bpm,
                key=key,
                overrides=overrides,
                overlap_seconds=overlap_seconds,
                unsupported={"init_audio": init_audio, "loop": loop or None},
                precision=precision,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                inpaint_audio=inpaint_audio,
                regions=regions,
                input_sample_rate=input_sample_rate,
            )
        # 1. Validate everything before any work; each prompt is read once.
        request, negative_request, workflow = self.check_call(
            prompt,
            negative_prompt,
            seconds_start,
            seconds_total,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            latents,
            output_type,
            callback_on_step_end_tensor_inputs,
            bpm=bpm,
            key=key,
            overrides=overrides,
            init_audio=init_audio,
            strength=strength,
            inpaint_audio=inpaint_audio,
            regions=regions,
            input_sample_rate=input_sample_rate,
            loop=loop,
            overlap_seconds=overlap_seconds,
            tail_seconds=tail_seconds,
            precision=precision,
        )
        seconds_total = float(request.seconds_total[0])
        latents = self.sample(
            request,
            negative_request,
            workflow,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            generator,
            latents,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
            precision,
        )

        if output_type == "latent":
            audio = latents
        else:
            # 6. Decode and trim to exactly the requested length (a loop: circularly, then resampled).
            num_samples = round(seconds_total * self.sample_rate)
            if workflow.loop:
                period = latents.shape[-1] * self.vae.hop_length
                decoded = self.decode_latents(torch.cat([latents] * 3, dim=-1)).float().cpu().numpy()
                one = loop_period(decoded, period, round(LOOP_CROSSFADE_SECONDS * self.sample_rate))
                audio = torch.from_numpy(circular_resample(one, num_samples))
            else:
                # Only the frames of the output and the decoder's context after them: the tail was for the U-Net.
                frames = min(latents.shape[-1], -(-num_samples // self.vae.hop_length) + self.decode_context_frames)
                audio = self.decode_latents(latents[..., :frames])[..., :num_samples].float()
            if workflow.inpaint is not None:
                original = np.broadcast_to(workflow.inpaint, audio.shape)
                generated = audio.cpu().numpy()
                audio = torch.from_numpy(assemble_inpainted(original, generated, workflow.regions, self.sample_rate))
            if output_type == "np":
                audio = audio.cpu().numpy()

        self.maybe_free_model_hooks()
        if not return_dict:
            return (audio,)
        return AudioPipelineOutput(audios=audio)


def _number(value) -> float:
    return check_finite_number("seconds_total", value)


def _first(generator):
    return generator[0] if isinstance(generator, list) else generator
