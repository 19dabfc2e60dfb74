"""The 1D latent-audio U-Net of the Stable Audio 1.0 recipe.

Residual 1D conv blocks with FiLM from (timestep + optional global conditioning), self- and
cross-attention at the chosen levels and always in the middle, skip concatenation between the
down and up paths. Attention, timestep embeddings and resampling layers come from diffusers;
only the FiLM residual block and the 1D transformer wrapper are written here, because diffusers
has no 1D equivalent of either.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin, BasicTransformerBlock
from diffusers.models.downsampling import Downsample1D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.upsampling import Upsample1D

from ..distillation import check_distilled_fields
from diffusers.utils import BaseOutput
from torch import nn

# Conditioning inputs that U-Nets saved before the inputs were one interface named by flags of their own:
# they count as extra input channels (timing mask 1, beat grid 4, in this order) and FiLM features (key 24).
LEGACY_CHANNELS = {"timing_mask_channel": 1, "beat_grid_channel": 4}
LEGACY_FILM = {"key_conditioning": 24}


@dataclass
class UNet1DConditionOutput(BaseOutput):
    """Output of [`UNet1DConditionModel`].

    Args:
        sample: the model prediction, `(batch, out_channels, frames)`.
    """

    sample: torch.Tensor


class ResBlock1D(nn.Module):
    """Pre-norm residual conv block whose second norm is scaled and shifted by the embedding (FiLM).

    Maps `(batch, in_channels, frames)` and an embedding `(batch, emb_dim)` to
    `(batch, out_channels, frames)`.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, norm_num_groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        self.conv1 = nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(norm_num_groups, out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_channels, out_channels, kernel_size=3, padding=1)
        self.skip = nn.Conv1d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, hidden_states: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        residual = hidden_states if self.skip is None else self.skip(hidden_states)
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None].chunk(2, dim=1)
        # 1 + scale so that a zero embedding projection leaves the normalised features untouched.
        hidden_states = self.norm2(hidden_states) * (1 + scale) + shift
        hidden_states = self.conv2(self.dropout(F.silu(hidden_states)))
        return residual + hidden_states


class Transformer1D(nn.Module):
    """Self- plus cross-attention over the frame axis, added back onto the conv features.

    Maps `(batch, channels, frames)` to the same shape. `encoder_hidden_states` is
    `(batch, tokens, cross_attention_dim)`; `encoder_attention_mask` is a bool `(batch, 1, tokens)`
    with True = attend, the form `torch.nn.functional.scaled_dot_product_attention` takes as is.
    """

    def __init__(
        self,
        channels: int,
        attention_head_dim: int,
        num_layers: int,
        cross_attention_dim: int,
        norm_num_groups: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    channels,
                    channels // attention_head_dim,
                    attention_head_dim,
                    dropout=dropout,
                    cross_attention_dim=cross_attention_dim,
                    # Bias-free key/value projections are what makes an all-zero context an exact
                    # "attend to nothing"; UNet1DConditionModel.forward relies on that.
                    attention_bias=False,
                )
                for _ in range(num_layers)
            ]
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.proj_in(self.norm(hidden_states).transpose(1, 2))
        for block in self.transformer_blocks:
            hidden_states = block(
                hidden_states,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
            )
        return residual + self.proj_out(hidden_states).transpose(1, 2)


class UNet1DConditionModel(ModelMixin, AttentionMixin, ConfigMixin, PeftAdapterMixin):
    r"""1D U-Net denoiser over latent frames, conditioned on a timestep, a cross-attention context and
    an optional global vector (e.g. pooled timing embeddings).

    Args:
        in_channels: latent channels of `sample`.
        out_channels: channels of the prediction; `None` means `in_channels`.
        sample_size: latent frames of the generation window (the pipeline reads it); `forward`
            accepts any number of frames.
        block_out_channels: channels per level, finest first.
        layers_per_block: residual blocks per level on the down path (the up path has the same).
        attention_levels: per level, whether a self+cross attention block follows its residual
            blocks. The middle block always has attention.
        attention_head_dim: channels per attention head.
        transformer_layers_per_block: `BasicTransformerBlock`s in each attention block.
        cross_attention_dim: last dimension of `encoder_hidden_states`.
        global_cond_dim: width of `global_hidden_states`; 0 means the model takes none.
        norm_num_groups: groups of every GroupNorm.
        dropout: dropout in residual and attention blocks.
        time_embedding_dim: width of the timestep embedding that drives FiLM; `None` means
            `4 * block_out_channels[0]`.
        position_embedding_dim: if > 0, sinusoidal features of this width of each frame's index in
            the window are projected and added after `conv_in`. Without them the network knows a
            frame's place only from the zero padding at the window's edges, as far as its receptive
            field reaches: a small U-Net then cannot tell whether a frame lies past `seconds_total`.
            0 (the default, and what models saved before it have) adds nothing.
        extra_in_channels: channels of `channel_inputs`, conditioning laid out along the frames (a timing
            mask, a beat grid, ...), read by the input convolution beside the latents. 0 takes none.
        film_cond_dim: features of `film_inputs` (a key profile, ...). A linear layer that starts at zero
            adds them to the embedding that drives every residual block's FiLM, so a new input changes
            nothing until it is trained. 0 takes none.
        timing_mask_channel, beat_grid_channel, key_conditioning: how U-Nets saved before
            `extra_in_channels`/`film_cond_dim` declared their timing mask (1 channel), beat grid (4
            channels, after the mask) and key (24 FiLM features); they add to those two counts.
            [`stable_audio_kit.conditioning.ConditioningProjection`] says which inputs fill them.
        distilled_steps, distilled_guidance_scale: set on a step-distilled student
            (`sak train distill`, :mod:`stable_audio_kit.distillation`): it samples with exactly this many
            DDIM steps, and classifier-free guidance at this scale is baked into a single conditional forward.
            `None` (a model trained on the v-objective) samples with any scheduler, steps and guidance.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 64,
        out_channels: int | None = None,
        sample_size: int = 1024,
        block_out_channels: tuple[int, ...] = (256, 512, 768, 1024),
        layers_per_block: int = 2,
        attention_levels: tuple[bool, ...] = (False, True, True, True),
        attention_head_dim: int = 64,
        transformer_layers_per_block: int = 1,
        cross_attention_dim: int = 768,
        global_cond_dim: int = 0,
        norm_num_groups: int = 32,
        dropout: float = 0.0,
        time_embedding_dim: int | None = None,
        position_embedding_dim: int = 0,
        timing_mask_channel: bool = False,
        beat_grid_channel: bool = False,
        key_conditioning: bool = False,
        extra_in_channels: int = 0,
        film_cond_dim: int = 0,
        distilled_steps: int | None = None,
        distilled_guidance_scale: float | None = None,
    ) -> None:
        super().__init__()
        _validate_config(
            in_channels=in_channels,
            out_channels=out_channels,
            sample_size=sample_size,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            attention_levels=attention_levels,
            attention_head_dim=attention_head_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            cross_attention_dim=cross_attention_dim,
            global_cond_dim=global_cond_dim,
            norm_num_groups=norm_num_groups,
            dropout=dropout,
            time_embedding_dim=time_embedding_dim,
            position_embedding_dim=position_embedding_dim,
            timing_mask_channel=timing_mask_channel,
            beat_grid_channel=beat_grid_channel,
            key_conditioning=key_conditioning,
            extra_in_channels=extra_in_channels,
            film_cond_dim=film_cond_dim,
            distilled_steps=distilled_steps,
            distilled_guidance_scale=distilled_guidance_scale,
        )
        out_channels = in_channels if out_channels is None else out_channels
        channels = list(block_out_channels)
        emb_dim = time_embedding_dim or 4 * channels[0]

        def res(c_in: int, c_out: int) -> ResBlock1D:
            return ResBlock1D(c_in, c_out, emb_dim, norm_num_groups, dropout)

        def attn(c: int) -> Transformer1D:
            return Transformer1D(
                c, attention_head_dim, transformer_layers_per_block, cross_attention_dim, norm_num_groups, dropout
            )

        self.time_proj = Timesteps(channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(channels[0], emb_dim)
        self.global_embedding = (
            nn.Sequential(nn.Linear(global_cond_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            if global_cond_dim > 0
            else None
        )

        self.film_embedding = None
        if self.film_dim:
            # Zero at the start: a new FiLM input changes nothing until it is trained.
            self.film_embedding = nn.Linear(self.film_dim, emb_dim)
            nn.init.zeros_(self.film_embedding.weight)
            nn.init.zeros_(self.film_embedding.bias)

        extra = self.extra_channels
        self.conv_in = nn.Conv1d(in_channels + extra, channels[0], kernel_size=3, padding=1)
        self.position_embedding = nn.Linear(position_embedding_dim, channels[0]) if position_embedding_dim > 0 else None

        last = len(channels) - 1
        self.down_resnets = nn.ModuleList()
        self.down_attentions = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        c_prev = channels[0]
        for level, c in enumerate(channels):
            self.down_resnets.append(nn.ModuleList([res(c_prev if i == 0 else c, c) for i in range(layers_per_block)]))
            self.down_attentions.append(attn(c) if attention_levels[level] else nn.Identity())
            self.downsamplers.append(Downsample1D(c, use_conv=True) if level < last else nn.Identity())
            c_prev = c

        self.mid_resnets = nn.ModuleList([res(channels[-1], channels[-1]), res(channels[-1], channels[-1])])
        self.mid_attention = attn(channels[-1])

        # Stored finest level first like the down path, so index `level` means the same on both.
        self.up_resnets = nn.ModuleList()
        self.up_attentions = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level, c in enumerate(channels):
            c_below = channels[level + 1] if level < last else channels[-1]
            self.up_resnets.append(
                nn.ModuleList([res(c_below + c if i == 0 else c, c) for i in range(layers_per_block)])
            )
            self.up_attentions.append(attn(c) if attention_levels[level] else nn.Identity())
            self.upsamplers.append(Upsample1D(c, use_conv=True) if level > 0 else nn.Identity())

        self.norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=1e-6)
        self.conv_out = nn.Conv1d(channels[0], out_channels, kernel_size=3, padding=1)

        self.gradient_checkpointing = False

    @property
    def extra_channels(self) -> int:
        """Channels of `channel_inputs` (the legacy flags included)."""
        config = self.config
        legacy = sum(n for flag, n in LEGACY_CHANNELS.items() if config.get(flag, False))
        return legacy + config.get("extra_in_channels", 0)

    @property
    def film_dim(self) -> int:
        """Features of `film_inputs` (the legacy flag included)."""
        config = self.config
        legacy = sum(n for flag, n in LEGACY_FILM.items() if config.get(flag, False))
        return legacy + config.get("film_cond_dim", 0)

    def _fix_state_dict_keys_on_load(self, state_dict) -> None:
        rename_legacy_keys(state_dict)
        super()._fix_state_dict_keys_on_load(state_dict)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        rename_legacy_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _run(self, block: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    def _attend(
        self, block: nn.Module, hidden_states: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        if isinstance(block, nn.Identity):
            return hidden_states
        return self._run(block, hidden_states, context, mask)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        global_hidden_states: torch.Tensor | None = None,
        channel_inputs: torch.Tensor | None = None,
        film_inputs: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet1DConditionOutput | tuple[torch.Tensor]:
        r"""Predict from noisy latents.

        Args:
            sample: noisy latents `(batch, in_channels, frames)`; any number of frames. Frames are
                zero-padded internally to a multiple of `2 ** (levels - 1)` and the output cropped
                back; the padding is seen by convolutions and self-attention.
            timestep: a number, a 0-d tensor, or `(batch,)`; a single value is used for the whole batch.
            encoder_hidden_states: cross-attention context `(batch, tokens, cross_attention_dim)`.
                `None` means no context: cross-attention then contributes exactly what a fully
                masked context does.
            encoder_attention_mask: `(batch, tokens)`, bool or 0/1; True/1 = attend, False/0 = ignore.
                A row with every token ignored attends to nothing (no NaN). `None` attends to all.
            global_hidden_states: `(batch, global_cond_dim)`, required iff `global_cond_dim > 0`.
                It is embedded and added to the timestep embedding, so it drives every FiLM.
            channel_inputs: `(batch, extra_channels, frames)` conditioning along the frames, concatenated
                to `sample`; required iff the model has extra input channels.
            film_inputs: `(batch, film_dim)` features embedded and added to the FiLM embedding; required iff
                the model has FiLM inputs.
            return_dict: return a [`UNet1DConditionOutput`] rather than a tuple.

        Returns:
            [`UNet1DConditionOutput`] or `(sample,)`, with `sample` `(batch, out_channels, frames)`.
        """
        context, mask = self._check_and_prepare_inputs(
            sample,
            encoder_hidden_states,
            encoder_attention_mask,
            global_hidden_states,
            channel_inputs,
            film_inputs,
        )
        batch, _, frames = sample.shape

        # 1. Embedding: timestep (+ global conditioning) -> FiLM input of every residual block.
        timestep = torch.as_tensor(timestep, device=sample.device).to(torch.float32)
        if timestep.ndim == 0:
            timestep = timestep[None]
        if timestep.ndim != 1 or timestep.shape[0] not in (1, batch):
            raise ValueError(
                f"timestep must be a number, a 0-d tensor or shaped (batch,)=({batch},), got {tuple(timestep.shape)}"
            )
        t_emb = self.time_proj(timestep.expand(batch)).to(dtype=sample.dtype)
        emb = self.time_embedding(t_emb)
        if self.global_embedding is not None:
            emb = emb + self.global_embedding(global_hidden_states)
        if self.film_embedding is not None:
            emb = emb + self.film_embedding(film_inputs.to(emb.dtype))

        # 2. Pad frames so every stride-2 downsample sees an even length and the up path lines up.
        multiple = 2 ** (len(self.config.block_out_channels) - 1)
        pad = -frames % multiple
        if channel_inputs is not None:
            sample = torch.cat([sample, channel_inputs.to(sample.dtype)], dim=1)
        hidden_states = self.conv_in(F.pad(sample, (0, pad)))
        if self.position_embedding is not None:
            # Frame indices 0 .. frames + pad - 1 of the window, the same for every item.
            positions = torch.arange(frames + pad, device=sample.device, dtype=torch.float32)
            features = get_timestep_embedding(
                positions, self.config.position_embedding_dim, flip_sin_to_cos=True, downscale_freq_shift=0
            )
            hidden_states = hidden_states + self.position_embedding(features.to(hidden_states.dtype)).T[None]

        # 3. Down path; one skip per level, taken before its downsample.
        skips = []
        for resnets, attention, downsample in zip(self.down_resnets, self.down_attentions, self.downsamplers):
            for resnet in resnets:
                hidden_states = self._run(resnet, hidden_states, emb)
            hidden_states = self._attend(attention, hidden_states, context, mask)
            skips.append(hidden_states)
            hidden_states = downsample(hidden_states)

        # 4. Middle.
        hidden_states = self._run(self.mid_resnets[0], hidden_states, emb)
        hidden_states = self._attend(self.mid_attention, hidden_states, context, mask)
        hidden_states = self._run(self.mid_resnets[1], hidden_states, emb)

        # 5. Up path, coarsest level first.
        for level in reversed(range(len(self.up_resnets))):
            hidden_states = torch.cat([hidden_states, skips[level]], dim=1)
            for resnet in self.up_resnets[level]:
                hidden_states = self._run(resnet, hidden_states, emb)
            hidden_states = self._attend(self.up_attentions[level], hidden_states, context, mask)
            hidden_states = self.upsamplers[level](hidden_states)

        # 6. Output, cropped back to the caller's length.
        hidden_states = self.conv_out(F.silu(self.norm_out(hidden_states)))[:, :, :frames]

        if not return_dict:
            return (hidden_states,)
        return UNet1DConditionOutput(sample=hidden_states)

    def _check_and_prepare_inputs(
        self,
        sample: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None,
        encoder_attention_mask: torch.Tensor | None,
        global_hidden_states: torch.Tensor | None,
        channel_inputs: torch.Tensor | None,
        film_inputs: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate the inputs; return the cross-attention context `(batch, tokens, cross_attention_dim)`
        and a bool mask `(batch, 1, tokens)` (True = attend) or `None`."""
        config = self.config
        if sample.ndim != 3 or sample.shape[1] != config.in_channels:
            raise ValueError(
                f"sample must be (batch, in_channels={config.in_channels}, frames), got {tuple(sample.shape)}"
            )
        batch = sample.shape[0]

        if config.global_cond_dim > 0:
            if global_hidden_states is None:
                raise ValueError(
                    f"global_hidden_states of shape (batch={batch}, global_cond_dim={config.global_cond_dim}) "
                    "is required because global_cond_dim > 0"
                )
            if global_hidden_states.shape != (batch, config.global_cond_dim):
                raise ValueError(
                    f"global_hidden_states must be (batch={batch}, global_cond_dim={config.global_cond_dim}), "
                    f"got {tuple(global_hidden_states.shape)}"
                )
        elif global_hidden_states is not None:
            raise ValueError(
                f"global_hidden_states given (shape {tuple(global_hidden_states.shape)}) but this model has "
                "global_cond_dim=0"
            )

        frames = sample.shape[2]
        for what, value, shape in (
            ("channel_inputs", channel_inputs, (batch, self.extra_channels, frames)),
            ("film_inputs", film_inputs, (batch, self.film_dim)),
        ):
            if shape[1] == 0:
                if value is not None:
                    raise ValueError(f"{what} given (shape {tuple(value.shape)}) but this model takes none")
            elif value is None:
                raise ValueError(
                    f"{what} of shape {shape} is required: this model's conditioning inputs give them "
                    "(stable_audio_kit.conditioning.ConditioningProjection)"
                )
            elif tuple(value.shape) != shape:
                raise ValueError(f"{what} must be {shape}, got {tuple(value.shape)}")

        if encoder_hidden_states is None:
            if encoder_attention_mask is not None:
                raise ValueError("encoder_attention_mask given without encoder_hidden_states")
            # A single zero token: with bias-free key/value projections this is exactly "attend to
            # nothing", and it keeps BasicTransformerBlock from falling back to self-attention.
            context = sample.new_zeros(batch, 1, config.cross_attention_dim)
            return context, None

        if (
            encoder_hidden_states.ndim != 3
            or encoder_hidden_states.shape[0] != batch
            or encoder_hidden_states.shape[2] != config.cross_attention_dim
        ):
            raise ValueError(
                f"encoder_hidden_states must be (batch={batch}, tokens, cross_attention_dim="
                f"{config.cross_attention_dim}), got {tuple(encoder_hidden_states.shape)}"
            )
        if encoder_attention_mask is None:
            return encoder_hidden_states, None

        tokens = encoder_hidden_states.shape[1]
        if encoder_attention_mask.shape != (batch, tokens):
            raise ValueError(
                f"encoder_attention_mask must be (batch, tokens)=({batch}, {tokens}), "
                f"got {tuple(encoder_attention_mask.shape)}"
            )
        # An additive bias (0 / -10000, diffusers' other mask convention) would read as "attend
        # everywhere" after .bool(), so anything but 0/1 is rejected rather than guessed at.
        if (
            encoder_attention_mask.dtype != torch.bool
            and not ((encoder_attention_mask == 0) | (encoder_attention_mask == 1)).all()
        ):
            raise ValueError(
                "encoder_attention_mask must be bool or hold only 0/1 (1 = attend), got values "
                f"{encoder_attention_mask.unique()[:8].tolist()}"
            )
        keep = encoder_attention_mask.bool()
        # Softmax over an empty row is undefined (NaN or 0 depending on the SDPA backend). For such
        # rows (e.g. a fully dropped context) attend to all-zero tokens instead: with bias-free key/value
        # projections that yields the zero attention output a true "attend to nothing" would.
        empty = ~keep.any(dim=1)
        context = encoder_hidden_states.masked_fill(empty[:, None, None], 0.0)
        keep = keep | empty[:, None]
        return context, keep[:, None, :]


def _validate_config(
    *,
    in_channels: int,
    out_channels: int | None,
    sample_size: int,
    block_out_channels: tuple[int, ...],
    layers_per_block: int,
    attention_levels: tuple[bool, ...],
    attention_head_dim: int,
    transformer_layers_per_block: int,
    cross_attention_dim: int,
    global_cond_dim: int,
    norm_num_groups: int,
    dropout: float,
    time_embedding_dim: int | None,
    position_embedding_dim: int,
    timing_mask_channel: bool,
    beat_grid_channel: bool,
    key_conditioning: bool = False,
    extra_in_channels: int = 0,
    film_cond_dim: int = 0,
    distilled_steps: int | None = None,
    distilled_guidance_scale: float | None = None,
) -> None:
    check_distilled_fields(distilled_steps, distilled_guidance_scale)
    positive = {
        "in_channels": in_channels,
        "sample_size": sample_size,
        "layers_per_block": layers_per_block,
        "attention_head_dim": attention_head_dim,
        "transformer_layers_per_block": transformer_layers_per_block,
        "cross_attention_dim": cross_attention_dim,
        "norm_num_groups": norm_num_groups,
    }
    if out_channels is not None:
        positive["out_channels"] = out_channels
    if time_embedding_dim is not None:
        positive["time_embedding_dim"] = time_embedding_dim
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if (
        not isinstance(position_embedding_dim, int)
        or isinstance(position_embedding_dim, bool)
        or position_embedding_dim < 0
        or position_embedding_dim % 2
    ):
        raise ValueError(f"position_embedding_dim must be an even int >= 0 (0 = none), got {position_embedding_dim!r}")
    if not isinstance(timing_mask_channel, bool):
        raise ValueError(f"timing_mask_channel must be true or false, got {timing_mask_channel!r}")
    if not isinstance(beat_grid_channel, bool):
        raise ValueError(f"beat_grid_channel must be true or false, got {beat_grid_channel!r}")
    if not isinstance(key_conditioning, bool):
        raise ValueError(f"key_conditioning must be true or false, got {key_conditioning!r}")
    for name, value in (("extra_in_channels", extra_in_channels), ("film_cond_dim", film_cond_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if not isinstance(global_cond_dim, int) or isinstance(global_cond_dim, bool) or global_cond_dim < 0:
        raise ValueError(f"global_cond_dim must be an int >= 0 (0 = no global conditioning), got {global_cond_dim!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if len(block_out_channels) == 0:
        raise ValueError("block_out_channels must name at least one level, got an empty sequence")
    if len(attention_levels) != len(block_out_channels):
        raise ValueError(
            f"attention_levels must have one entry per level of block_out_channels={list(block_out_channels)}, "
            f"got {list(attention_levels)}"
        )
    for level, (channels, has_attention) in enumerate(zip(block_out_channels, attention_levels)):
        if not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"block_out_channels[{level}] must be a positive int, got {channels!r}")
        if channels % norm_num_groups:
            raise ValueError(
                f"block_out_channels[{level}]={channels} must be divisible by norm_num_groups={norm_num_groups}"
            )
        # The middle block always attends at the last level's width.
        if (has_attention or level == len(block_out_channels) - 1) and channels % attention_head_dim:
            raise ValueError(
                f"block_out_channels[{level}]={channels} must be divisible by attention_head_dim="
                f"{attention_head_dim} because that level (or the middle block) has attention"
            )


def rename_legacy_keys(state_dict, prefix: str = "") -> None:
    """U-Nets saved with a key input called its FiLM projection ``key_embedding``."""
    for key in [k for k in state_dict if k.startswith(prefix + "key_embedding.")]:
        state_dict[prefix + "film_embedding." + key[len(prefix + "key_embedding.") :]] = state_dict.pop(key)
