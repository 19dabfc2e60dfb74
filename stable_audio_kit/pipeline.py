"""Text-to-audio pipeline with timing conditioning, in diffusers' conventions."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from .conditioning import (
    Conditioning,
    ConditioningProjection,
    ConditioningRequest,
    ModelFacts,
    ParsedPrompt,
    check_overrides,
    encode_text,
    max_bpm,
    unconditional,
)
from .objective import cfg_combine
from .utils import check_finite_number

logger = logging.getLogger(__name__)

COMPONENTS = ("vae", "text_encoder", "tokenizer", "projection", "unet", "scheduler")
DEFAULT_MODEL_DIR = Path(__file__).parent / "pretrained" / "demo"


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class StableAudioKitPipeline(DiffusionPipeline):
    """Text-to-audio with timing conditioning (Stable Audio 1.0).

    Components:
        vae: :class:`stable_audio_kit.vae.AudioVAE` (diffusers ``AutoencoderOobleck``) or
            :class:`stable_audio_kit.vae.SpectralAudioVAE`.
        text_encoder: transformers ``ClapTextModelWithProjection`` (frozen).
        tokenizer: the CLAP (RoBERTa) tokenizer.
        projection: :class:`stable_audio_kit.conditioning.ConditioningProjection`.
        unet: :class:`stable_audio_kit.unet.UNet1DConditionModel`.
        scheduler: any diffusers scheduler configured for ``v_prediction``.

    The U-Net always denoises its whole window (``unet.config.sample_size`` latent frames); the
    decoded audio is trimmed to exactly ``round(seconds_total * sample_rate)`` samples. What the U-Net is
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

    # ------------------------------------------------------------------ steps
    def check_inputs(
        self,
        prompt,
        negative_prompt,
        seconds_start,
        seconds_total,
        num_inference_steps,
        guidance_scale,
        num_waveforms_per_prompt,
        latents,
        output_type,
    ) -> tuple[list[str | ParsedPrompt], list[str | ParsedPrompt] | None, float, float]:
        """Validate everything before any work; returns normalised prompts and seconds."""
        prompts = [prompt] if isinstance(prompt, (str, ParsedPrompt)) else prompt
        if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        for p in prompts:
            if not isinstance(p, (str, ParsedPrompt)):
                raise ValueError(
                    f"prompt must be a string or a list of strings, got an item {p!r} of type {type(p).__name__}"
                )
        negatives = None
        if negative_prompt is not None:
            single = isinstance(negative_prompt, (str, ParsedPrompt))
            negatives = [negative_prompt] * len(prompts) if single else negative_prompt
            if not isinstance(negatives, (list, tuple)) or not all(
                isinstance(n, (str, ParsedPrompt)) for n in negatives
            ):
                raise ValueError(f"negative_prompt must be a string or a list of strings, got {negative_prompt!r}")
            if len(negatives) != len(prompts):
                raise ValueError(f"negative_prompt has {len(negatives)} items for {len(prompts)} prompts")
        seconds_start = check_finite_number("seconds_start", seconds_start)
        if seconds_start < 0:
            raise ValueError(f"seconds_start must be >= 0, got {seconds_start}")
        seconds_total = check_finite_number("seconds_total", seconds_total)
        if not 0 < seconds_total <= self.max_seconds:
            raise ValueError(f"seconds_total must be in (0, {self.max_seconds:.3f}], got {seconds_total}")
        if round(seconds_total * self.sample_rate) < 1:
            raise ValueError(f"seconds_total={seconds_total} is shorter than one sample at {self.sample_rate} Hz")
        _check_int("num_inference_steps", num_inference_steps, 1)
        _check_int("num_waveforms_per_prompt", num_waveforms_per_prompt, 1)
        check_finite_number("guidance_scale", guidance_scale)
        if output_type not in ("np", "pt", "latent"):
            raise ValueError(f"output_type must be 'np', 'pt' or 'latent', got {output_type!r}")
        if latents is not None:
            expected = (
                len(prompts) * num_waveforms_per_prompt,
                self.unet.config.in_channels,
                self.unet.config.sample_size,
            )
            if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != expected:
                got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
                raise ValueError(f"latents must be a tensor of shape {expected}, got {got}")
        return list(prompts), (list(negatives) if negatives is not None else None), seconds_start, seconds_total

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

    def make_request(
        self,
        prompts: list[str | ParsedPrompt],
        seconds_start: float,
        seconds_total: float,
        overrides: dict[str, Any] | None = None,
    ) -> ConditioningRequest:
        """A request for the whole window, its overrides (``{"bpm": 120}``) validated."""
        return ConditioningRequest.make(
            prompts, seconds_start, seconds_total, int(self.unet.config.sample_size), check_overrides(overrides or {})
        )

    def check_request(self, request: ConditioningRequest) -> None:
        """Raise ``ValueError`` naming the value if a conditioning input of this model cannot give what the
        request asks (an override the model has no input for, a tempo beyond :attr:`max_bpm`, ...)."""
        self.projection.check(request, self.model_facts)

    def encode_conditioning(self, request: ConditioningRequest, device: torch.device | None = None) -> Conditioning:
        """The U-Net's conditioning for a request: context, global vector, channel and FiLM inputs."""
        device = device or self._execution_device
        return self.projection(self.projection.features(request, self.model_facts, device))

    def check_call(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        seconds_start: float = 0.0,
        seconds_total: float | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
        num_waveforms_per_prompt: int = 1,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        callback_on_step_end_tensor_inputs: list[str] = ("latents",),
        bpm: float | None = None,
        key: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> tuple[ConditioningRequest, ConditioningRequest | None]:
        """Every check a call makes before any work, with the same arguments; returns the conditioning
        requests of the prompts and the negative prompts. The CLI runs it on every row of a prompt list
        before it generates the first file, so the two cannot disagree."""
        if seconds_total is None:
            seconds_total = self.max_seconds
        prompts, negatives, seconds_start, seconds_total = self.check_inputs(
            prompt,
            negative_prompt,
            seconds_start,
            seconds_total,
            num_inference_steps,
            guidance_scale,
            num_waveforms_per_prompt,
            latents,
            output_type,
        )
        for name in callback_on_step_end_tensor_inputs:
            if name not in ("latents", "noise_pred"):
                raise ValueError(
                    f"callback_on_step_end_tensor_inputs may hold 'latents' and 'noise_pred', got {name!r}"
                )
        given = {**(overrides or {}), "bpm": bpm, "key": key}
        request = self.make_request(prompts, seconds_start, seconds_total, given)
        self.check_request(request)
        negative_request = request.negative(negatives) if negatives is not None else None
        if negative_request is not None:
            self.check_request(negative_request)
        return request, negative_request

    def prepare_latents(
        self,
        batch_size: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial noise ``(B, latent_channels, sample_size)`` scaled for the scheduler."""
        shape = (batch_size, self.unet.config.in_channels, self.unet.config.sample_size)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch_size} waveforms")
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device=device, dtype=dtype)
        return latents * self.scheduler.init_noise_sigma

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
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
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
    ) -> AudioPipelineOutput | tuple:
        """Generate audio of exactly ``seconds_total`` seconds for each prompt.

        Returns ``AudioPipelineOutput(audios=...)`` with ``audios`` of shape
        ``(len(prompts) * num_waveforms_per_prompt, channels, round(seconds_total * sample_rate))``
        (numpy float32 or torch), or the final latents ``(B, D, sample_size)`` for ``output_type="latent"``.
        ``guidance_scale <= 1`` switches classifier-free guidance off.

        A model with a beat grid (the ``beat_grid`` input) plays at ``bpm``, or else at the tempo each
        prompt names ("at 96 bpm"). The tempo belongs to the prompt: the unconditional half of guidance gets
        the negative prompt's tempo, or none, so guidance pushes towards the requested tempo too. Likewise
        a model with the ``key`` input plays in ``key`` ("F# minor", "Bb major"), or else in the key each
        prompt names. ``overrides`` gives any conditioning input its value by the name it reads
        (``{"bpm": 120}``; ``bpm=`` and ``key=`` are shorthands), for every prompt. Prompts may be strings or
        :class:`~stable_audio_kit.conditioning.ParsedPrompt`.
        """
        # 1. Validate everything before any work; each prompt is read once.
        request, negative_request = self.check_call(
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
        )
        seconds_total = float(request.seconds_total[0])
        device = self._execution_device
        do_cfg = guidance_scale > 1.0
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

        # 3. Timesteps.
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Initial noise over the whole window.
        latents = self.prepare_latents(batch, cond.encoder_hidden_states.dtype, device, generator, latents)

        # 5. Denoising loop.
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = torch.cat([latents] * 2) if do_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            noise_pred = self.unet(model_input, t, **unet_inputs).sample
            if do_cfg:
                uncond_pred, cond_pred = noise_pred.chunk(2)
                noise_pred = cfg_combine(uncond_pred, cond_pred, guidance_scale)
            latents = self.scheduler.step(noise_pred, t, latents).prev_sample
            if callback_on_step_end is not None:
                local = {"latents": latents, "noise_pred": noise_pred}
                outputs = callback_on_step_end(self, i, t, {k: local[k] for k in callback_on_step_end_tensor_inputs})
                latents = outputs.pop("latents", latents)

        if output_type == "latent":
            audio = latents
        else:
            # 6. Decode the window and trim to exactly the requested length.
            num_samples = round(seconds_total * self.sample_rate)
            audio = self.decode_latents(latents)[..., :num_samples].float()
            if output_type == "np":
                audio = audio.cpu().numpy()

        self.maybe_free_model_hooks()
        if not return_dict:
            return (audio,)
        return AudioPipelineOutput(audios=audio)


def check_model_dir(path: str | Path) -> Path:
    """Raise ``ValueError`` naming what is missing unless ``path`` is a complete pipeline directory."""
    path = Path(path)
    if not path.is_dir():
        if path == DEFAULT_MODEL_DIR:
            raise ValueError(
                f"the bundled default model is not installed at {str(path)!r}; pass a model directory "
                "(create one with `sak new-model` or `sak export`)"
            )
        raise ValueError(f"model directory {str(path)!r} does not exist")
    index = path / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{str(path)!r} is not a pipeline directory: model_index.json is missing")
    try:
        entries = json.loads(index.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(index)!r} is not valid JSON: {err}") from None
    missing = [c for c in COMPONENTS if c not in entries or not (path / c).is_dir()]
    if missing:
        raise ValueError(f"model directory {str(path)!r} is missing component(s): {', '.join(missing)}")
    # Catch a VAE/U-Net mismatch from the configs, before loading weights fails less clearly.
    try:
        vae_cfg = json.loads((path / "vae" / "config.json").read_text())
        unet_cfg = json.loads((path / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"model directory {str(path)!r} has an unreadable component config: {err}") from None
    # AudioVAE stores its latent channels as decoder_input_channels, SpectralAudioVAE as latent_channels.
    latent = vae_cfg.get("decoder_input_channels", vae_cfg.get("latent_channels"))
    for key in ("in_channels", "out_channels"):
        value = unet_cfg.get(key) or unet_cfg.get("in_channels")
        if value != latent:
            raise ValueError(
                f"model directory {str(path)!r}: unet.{key}={value} but the VAE has {latent} latent channels"
            )
    return path


def build_pipeline(cfg) -> StableAudioKitPipeline:
    """An untrained pipeline from a :class:`stable_audio_kit.config.ModelConfig` (``sak new-model``)."""
    from .conditioning import build_text_encoder
    from .schedulers import make_scheduler
    from .unet import UNet1DConditionModel
    from .vae import build_vae

    if cfg.window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {cfg.window_seconds}")
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg)
    text_encoder, tokenizer = build_text_encoder(cfg.text)
    sample_size = max(1, round(cfg.window_seconds * cfg.sample_rate / vae.hop_length))
    projection = ConditioningProjection(
        text_encoder_dim=text_encoder.config.hidden_size,
        text_hidden_layer=cfg.text.hidden_layer,
        **conditioning_routes(cfg),
    )
    u = cfg.unet
    unet = UNet1DConditionModel(
        in_channels=cfg.vae.latent_channels,
        sample_size=sample_size,
        block_out_channels=list(u.block_out_channels),
        layers_per_block=u.layers_per_block,
        attention_levels=list(u.attention_levels),
        attention_head_dim=u.attention_head_dim,
        transformer_layers_per_block=u.transformer_layers_per_block,
        cross_attention_dim=cfg.conditioning.dim,
        global_cond_dim=projection.global_dim,
        norm_num_groups=u.norm_num_groups,
        dropout=u.dropout,
        position_embedding_dim=u.position_embedding_dim,
        extra_in_channels=projection.channel_count,
        film_cond_dim=projection.film_dim,
    )
    scheduler = make_scheduler(cfg.scheduler.name, cfg.scheduler.num_train_timesteps, cfg.scheduler.beta_schedule)
    for module in (vae, projection, unet):
        module.eval()
    return StableAudioKitPipeline(vae, text_encoder, tokenizer, projection, unet, scheduler)


def conditioning_routes(cfg) -> dict[str, Any]:
    """The projection's routing from a model config. The flags older configs set for an input
    (``conditioning.prompt_numbers``, ``unet.timing_mask_channel``, ``unet.beat_grid_channel``,
    ``unet.key_conditioning``) add that input to its route, ahead of the ones the lists name."""
    cond, unet = cfg.conditioning, cfg.unet
    options = {name: dict(value) for name, value in (cond.options or {}).items()}
    add_to_prompt = ["prompt_numbers"] if cond.prompt_numbers else []
    if cond.prompt_numbers:
        options.setdefault("prompt_numbers", {"min_value": cond.prompt_number_min, "max_value": cond.prompt_number_max})
    channels = [name for flag, name in LEGACY_UNET_INPUTS["input_channels"] if unet.get(flag, False)]
    film = [name for flag, name in LEGACY_UNET_INPUTS["film"] if unet.get(flag, False)]

    def merged(first: list[str], listed) -> list[str]:
        return list(dict.fromkeys(first + list(listed)))

    return dict(
        conditioning_dim=cond.dim,
        max_seconds=cond.max_seconds,
        cross_attention=list(cond.cross_attention),
        global_cond=list(cond.global_cond),
        add_to_prompt=merged(add_to_prompt, cond.add_to_prompt),
        input_channels=merged(channels, cond.input_channels),
        film=merged(film, cond.film),
        options=options,
    )


# The inputs U-Nets saved before the conditioning seam declared by flags, in their channel order.
LEGACY_UNET_INPUTS = {
    "input_channels": (("timing_mask_channel", "timing_mask"), ("beat_grid_channel", "beat_grid")),
    "film": (("key_conditioning", "key"),),
}


def adopt_legacy_inputs(projection: ConditioningProjection, unet) -> None:
    """A U-Net saved before the conditioning seam names its timing mask, beat grid and key by flags of its
    own, and its projection does not list them: list them there (first, in the U-Net's channel order)."""
    for route, flags in LEGACY_UNET_INPUTS.items():
        names = [name for flag, name in flags if unet.config.get(flag, False)]
        projection.ensure_inputs(route, names)
