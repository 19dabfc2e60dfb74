"""The audio side of CLAP: log-mel features for the HTSAT tower, and a trained CLAP as an embedder.

Training (``stable_audio_kit.train.clap``) and evaluation share these, so a clip is featurised the
same way in both: mono audio at the CLAP's own rate, at most ``clip_seconds`` long, padded by
transformers' ``ClapFeatureExtractor`` (``repeatpad`` by default) and turned into a log-mel
spectrogram that the audio tower resizes to its ``spec_size``.

A trained CLAP is saved as one folder (a checkpoint's ``export/clap``): the ``ClapModel``
(``config.json`` + weights), the feature extractor (``preprocessor_config.json``) and the tokenizer,
the layout of ``laion/clap-htsat-unfused``. :meth:`ClapAudioEmbedder.from_pretrained` loads it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import ClapAudioConfig, ClapFeatureExtractor, ClapModel, PreTrainedTokenizerBase

from .audio import resample

PADDING_MODES = ("repeatpad", "repeat", "pad")
FEATURE_OPTIONS = ("hop_length", "fft_window_size", "frequency_min", "frequency_max", "padding")


# --------------------------------------------------------------------------------------------
# The HTSAT audio tower's geometry


def spec_frames(audio_config: ClapAudioConfig) -> int:
    """Mel frames the audio tower takes: ``spec_size * (spec_size // num_mel_bins)``; shorter inputs are resized."""
    return audio_config.spec_size * (audio_config.spec_size // audio_config.num_mel_bins)


def check_audio_config(audio_config: ClapAudioConfig) -> None:
    """Raise ``ValueError`` naming the first size of an HTSAT (Swin) audio tower that cannot work.

    The tower folds a ``(frames, num_mel_bins)`` spectrogram into a ``spec_size`` square image
    (``freq_ratio = spec_size // num_mel_bins`` time slices stacked along frequency), cuts it into
    ``patch_stride`` patches and halves the grid after every stage but the last.
    """
    c = audio_config
    mels, spec = c.num_mel_bins, c.spec_size
    if mels < 1 or spec < 1:
        raise ValueError(f"audio.num_mel_bins and audio.spec_size must be >= 1, got {mels} and {spec}")
    if spec % mels:
        raise ValueError(f"audio.spec_size ({spec}) must be a multiple of audio.num_mel_bins ({mels})")
    if c.enable_fusion:
        raise ValueError("audio.enable_fusion is not supported: clips are never longer than the training window")
    patch = (c.patch_size, c.patch_size) if isinstance(c.patch_size, int) else tuple(c.patch_size)
    stride = (c.patch_stride, c.patch_stride) if isinstance(c.patch_stride, int) else tuple(c.patch_stride)
    if len(stride) != 2 or stride[0] != stride[1] or tuple(patch) != stride:
        raise ValueError(f"audio.patch_size and audio.patch_stride must be one equal square, got {patch} and {stride}")
    if spec % stride[0]:
        raise ValueError(f"audio.spec_size ({spec}) must be a multiple of audio.patch_stride ({stride[0]})")
    depths, heads = list(c.depths), list(c.num_attention_heads)
    if not depths or len(heads) != len(depths):
        raise ValueError(
            f"audio.depths and audio.num_attention_heads need one entry per stage, got {depths} and {heads}"
        )
    stages = len(depths)
    if c.window_size < 1:
        raise ValueError(f"audio.window_size must be >= 1, got {c.window_size}")
    grid = spec // stride[0]
    if grid % 2 ** (stages - 1):
        raise ValueError(
            f"the {grid}x{grid} patch grid (spec_size / patch_stride) must halve {stages - 1} times; "
            "use fewer stages or a larger spec_size"
        )
    freq_ratio = spec // mels
    last = grid // 2 ** (stages - 1)
    if last < freq_ratio or last % freq_ratio:
        raise ValueError(
            f"the last stage's {last}x{last} grid must be a multiple of freq_ratio = spec_size // num_mel_bins "
            f"= {freq_ratio}; use fewer stages, a smaller patch_stride or more mel bins"
        )
    for i, (depth, head) in enumerate(zip(depths, heads)):
        dim = c.patch_embeds_hidden_size * 2**i
        if depth < 1 or head < 1 or dim % head:
            raise ValueError(
                f"audio stage {i}: width {dim} needs depth >= 1 and heads dividing it, got {depth}, {head}"
            )
    if last < c.window_size:
        raise ValueError(
            f"the last stage's {last}x{last} grid is smaller than audio.window_size={c.window_size} (Swin windows "
            "cannot shrink below their relative-position table); use a smaller window_size or fewer stages"
        )
    width = c.patch_embeds_hidden_size * 2 ** (stages - 1)
    if c.hidden_size != width:
        raise ValueError(
            f"audio.hidden_size must be patch_embeds_hidden_size * 2**(stages - 1) = {width} (the last stage's "
            f"width), got {c.hidden_size}"
        )


# --------------------------------------------------------------------------------------------
# Features


def _next_pow2(x: float) -> int:
    return 2 ** max(0, math.ceil(math.log2(max(x, 1.0))))


def build_feature_extractor(
    audio_config: ClapAudioConfig,
    sample_rate: int,
    clip_seconds: float,
    *,
    hop_length: int | None = None,
    fft_window_size: int | None = None,
    frequency_min: float = 0.0,
    frequency_max: float | None = None,
    padding: str = "repeatpad",
) -> ClapFeatureExtractor:
    """A ``ClapFeatureExtractor`` whose spectrogram of a ``clip_seconds`` clip fits the audio tower.

    Defaults: ``hop_length`` spreads the clip over at most :func:`spec_frames` frames;
    ``fft_window_size`` is the next power of two of ``max(2 * hop_length, sample_rate / 50)``;
    ``frequency_max`` is the Nyquist frequency. Mel filters use the Slaney scale (transformers'
    ``rand_trunc`` mode); random truncation never happens since no clip is longer than the window.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if not isinstance(clip_seconds, (int, float)) or not math.isfinite(clip_seconds) or clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be a positive number, got {clip_seconds!r}")
    clip = round(clip_seconds * sample_rate)
    max_frames = spec_frames(audio_config)
    if max_frames < 2:
        raise ValueError(f"the audio tower takes {max_frames} frame(s); raise audio.spec_size")
    if hop_length is None:
        hop_length = max(1, math.ceil(clip / (max_frames - 1)))
    if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length < 1:
        raise ValueError(f"features.hop_length must be a positive integer, got {hop_length!r}")
    frames = 1 + clip // hop_length
    if frames > max_frames:
        raise ValueError(
            f"features.hop_length={hop_length} gives {frames} frames for a {clip_seconds:g} s clip "
            f"at {sample_rate} Hz, "
            f"more than the audio tower's {max_frames} (spec_size * freq_ratio); raise hop_length or audio.spec_size"
        )
    if frames < 2:
        raise ValueError(f"features.hop_length={hop_length} leaves a {clip_seconds:g} s clip a single frame")
    if fft_window_size is None:
        fft_window_size = _next_pow2(max(2 * hop_length, sample_rate / 50))
    if isinstance(fft_window_size, bool) or not isinstance(fft_window_size, int) or fft_window_size < 8:
        raise ValueError(f"features.fft_window_size must be an integer >= 8, got {fft_window_size!r}")
    nyquist = sample_rate / 2
    frequency_max = nyquist if frequency_max is None else float(frequency_max)
    if not 0.0 <= frequency_min < frequency_max <= nyquist:
        raise ValueError(
            f"features need 0 <= frequency_min < frequency_max <= {nyquist:g} (Nyquist), "
            f"got {frequency_min} and {frequency_max}"
        )
    if padding not in PADDING_MODES:
        raise ValueError(f"features.padding must be one of {list(PADDING_MODES)}, got {padding!r}")
    with warnings.catch_warnings():
        # An empty mel filter is refused below, with the numbers that cause it.
        warnings.simplefilter("ignore")
        extractor = ClapFeatureExtractor(
            feature_size=audio_config.num_mel_bins,
            sampling_rate=sample_rate,
            hop_length=hop_length,
            max_length_s=float(clip_seconds),
            fft_window_size=fft_window_size,
            frequency_min=float(frequency_min),
            frequency_max=frequency_max,
            truncation="rand_trunc",
            padding=padding,
        )
    empty = np.flatnonzero(extractor.mel_filters_slaney.max(axis=0) == 0.0)
    if empty.size:
        raise ValueError(
            f"{empty.size} of {audio_config.num_mel_bins} mel filters cover no FFT bin (fft_window_size="
            f"{fft_window_size} at {sample_rate} Hz, {frequency_min:g}-{frequency_max:g} Hz); raise "
            "features.fft_window_size or lower audio.num_mel_bins"
        )
    return extractor


def clip_samples(feature_extractor: ClapFeatureExtractor) -> int:
    """The longest clip the features describe, in samples at ``feature_extractor.sampling_rate``."""
    return round(float(feature_extractor.max_length_s) * int(feature_extractor.sampling_rate))


def _pad_clips(clips: list[np.ndarray], limit: int, mode: str) -> np.ndarray:
    """``(B, limit)``: each clip padded as ``ClapFeatureExtractor`` pads it (``repeatpad``: repeated
    whole as often as it fits, then silence; ``repeat``: repeated and cut; ``pad``: silence)."""
    out = np.zeros((len(clips), limit), dtype=np.float64)
    for row, clip in enumerate(clips):
        n = clip.shape[0]
        if n < limit and mode == "repeat":
            clip = np.tile(clip, limit // n + 1)[:limit]
        elif n < limit and mode == "repeatpad":
            clip = np.tile(clip, limit // n)
        out[row, : clip.shape[0]] = clip
    return out


def extract_features(feature_extractor: ClapFeatureExtractor, waveforms: Sequence[np.ndarray]) -> torch.Tensor:
    """Log-mel features ``(B, 1, frames, num_mel_bins)`` float32 of mono clips ``(samples,)``.

    Each clip must hold 1 to :func:`clip_samples` samples at the extractor's rate; shorter ones are
    padded as ``feature_extractor.padding`` says. The result is ``feature_extractor(clips,
    truncation="rand_trunc")``'s (its padding, periodic Hann window, centred reflect-padded frames,
    power spectrum, Slaney mel filters, 1e-10 floor, dB), computed for the whole batch with
    ``torch.stft`` in float64 instead of its per-frame numpy loop, which costs ~0.1 s per 10 s clip.
    """
    limit = clip_samples(feature_extractor)
    clips = []
    for i, wav in enumerate(waveforms):
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1 or not 1 <= wav.shape[0] <= limit:
            raise ValueError(f"clip {i} must be mono (samples,) with 1 to {limit} samples, got shape {wav.shape}")
        clips.append(wav)
    if not clips:
        raise ValueError("no clips to featurise")
    fft = int(feature_extractor.fft_window_size)
    if limit <= fft // 2:
        # Too short for torch's reflect padding; numpy reflects any length.
        out = feature_extractor(
            clips,
            sampling_rate=feature_extractor.sampling_rate,
            max_length=limit,
            truncation="rand_trunc",
            padding=feature_extractor.padding,
            return_tensors="pt",
        )
        return out["input_features"].float()
    audio = torch.from_numpy(_pad_clips(clips, limit, feature_extractor.padding))
    window = torch.hann_window(fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(
        audio,
        n_fft=fft,
        hop_length=int(feature_extractor.hop_length),
        window=window,
        center=True,
        pad_mode="reflect",
        onesided=True,
        return_complex=True,
    )
    power = torch.view_as_real(spec).pow(2).sum(-1)  # (B, freq, frames)
    mel_filters = torch.from_numpy(np.asarray(feature_extractor.mel_filters_slaney, dtype=np.float64))
    mel = torch.matmul(power.transpose(1, 2), mel_filters).clamp_min(1e-10)  # (B, frames, n_mels)
    return (10.0 * torch.log10(mel)).float().unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Embedding with a trained CLAP


def _mono_clips(audios: Any) -> list[np.ndarray]:
    """``(N, samples)`` / ``(N, channels, samples)`` arrays or a list of ``(samples,)`` /
    ``(channels, samples)`` arrays, as a list of float32 mono ``(samples,)``."""
    if isinstance(audios, torch.Tensor):
        audios = audios.detach().float().cpu().numpy()
    if isinstance(audios, np.ndarray):
        if audios.ndim not in (2, 3):
            raise ValueError(
                f"audios must be (N, samples), (N, channels, samples) or a list of clips, got shape {audios.shape}"
            )
        audios = list(audios)
    if not isinstance(audios, (list, tuple)) or not audios:
        raise ValueError("audios must be a non-empty batch of clips")
    out = []
    for i, clip in enumerate(audios):
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().float().cpu().numpy()
        arr = np.asarray(clip, dtype=np.float32)
        if arr.ndim == 2:
            if arr.shape[0] > arr.shape[1]:
                raise ValueError(f"clip {i} must be (channels, samples), got shape {arr.shape}; transpose it")
            arr = arr.mean(axis=0)
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(f"clip {i} must be (samples,) or (channels, samples) and non-empty, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"clip {i} contains NaN or inf samples")
        out.append(arr)
    return out


class ClapAudioEmbedder:
    """Audio and text to unit-norm embeddings ``(N, D)`` in a trained CLAP's shared space.

    Feed these to ``metrics.clap_score`` / ``metrics.retrieval_recall`` (audio vs. prompt
    embeddings) and ``metrics.frechet_distance`` (audio vs. audio). Audio at any rate is resampled
    to the CLAP's; a clip longer than the training window is cut into window-long pieces whose
    embeddings are averaged, weighted by length, so every second counts and nothing is random.

    Args:
        model: a transformers ``ClapModel``.
        feature_extractor: the ``ClapFeatureExtractor`` the model was trained with.
        tokenizer: its tokenizer; needed only by :meth:`embed_text`.
    """

    def __init__(
        self,
        model: ClapModel,
        feature_extractor: ClapFeatureExtractor,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        if not isinstance(model, ClapModel):
            raise TypeError(f"model must be a transformers ClapModel, got {type(model).__name__}")
        mels = model.config.audio_config.num_mel_bins
        if feature_extractor.feature_size != mels:
            raise ValueError(
                f"the feature extractor gives {feature_extractor.feature_size} mel bins but the audio tower "
                f"takes {mels}"
            )
        if feature_extractor.truncation == "fusion":
            raise ValueError("feature extractors in 'fusion' mode are not supported (fused CLAP towers)")
        self.model = model
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> ClapAudioEmbedder:
        """Load a CLAP folder (a CLAP run's ``checkpoints/step_*/export/clap``); never touches the network."""
        from transformers import AutoTokenizer

        path = Path(path)
        for name in ("config.json", "preprocessor_config.json"):
            if not (path / name).is_file():
                raise ValueError(f"{str(path)!r} is not a CLAP folder: {name} is missing")
        model = ClapModel.from_pretrained(path, local_files_only=True).to(device=device, dtype=dtype).eval()
        extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
        tokenizer = None
        if (path / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return cls(model, extractor, tokenizer)

    def save_pretrained(self, path: str | Path) -> None:
        """Write model, feature extractor and tokenizer into one folder."""
        path = Path(path)
        self.model.save_pretrained(path)
        self.feature_extractor.save_pretrained(path)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def clip_seconds(self) -> float:
        return float(self.feature_extractor.max_length_s)

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def max_length(self) -> int:
        """Tokens per prompt: the text tower's positions minus RoBERTa's two reserved ones."""
        return int(self.model.config.text_config.max_position_embeddings) - 2

    @torch.no_grad()
    def embed_audio(self, audios: Any, sample_rate: int, batch_size: int = 16, normalize: bool = True) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of ``N`` clips.

        Args:
            audios: ``(N, samples)`` or ``(N, channels, samples)`` (numpy or torch), or a list of
                ``(samples,)`` / ``(channels, samples)`` clips of any lengths; channels are averaged.
            sample_rate: the clips' rate in Hz.
            batch_size: window-long pieces per forward pass.
            normalize: unit-norm rows (cosine space); ``False`` gives the raw projections.
        """
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        clips = [resample(c[None], int(sample_rate), self.sample_rate)[0] for c in _mono_clips(audios)]
        limit = clip_samples(self.feature_extractor)
        pieces, owners, weights = [], [], []
        for i, clip in enumerate(clips):
            if clip.shape[0] == 0:
                raise ValueError(f"clip {i} is shorter than one sample at {self.sample_rate} Hz")
            for start in range(0, clip.shape[0], limit):
                piece = clip[start : start + limit]
                pieces.append(piece)
                owners.append(i)
                weights.append(piece.shape[0])
        device = self.model.device
        dtype = next(self.model.parameters()).dtype
        was_training = self.model.training
        self.model.eval()
        try:
            embeds = []
            for start in range(0, len(pieces), batch_size):
                features = extract_features(self.feature_extractor, pieces[start : start + batch_size])
                out = self.model.audio_model(input_features=features.to(device=device, dtype=dtype))
                embeds.append(self.model.audio_projection(out.pooler_output).float().cpu())
        finally:
            self.model.train(was_training)
        piece_emb = torch.cat(embeds)
        if normalize:
            piece_emb = torch.nn.functional.normalize(piece_emb, dim=-1)
        owner = torch.tensor(owners)
        w = torch.tensor(weights, dtype=torch.float32)[:, None]
        total = torch.zeros(len(clips), piece_emb.shape[1]).index_add_(0, owner, piece_emb * w)
        result = total / torch.zeros(len(clips), 1).index_add_(0, owner, w)
        if normalize:
            result = torch.nn.functional.normalize(result, dim=-1)
        return result.numpy()

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str], batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of ``N`` prompts (the CLAP's pooled, projected text)."""
        if self.tokenizer is None:
            raise ValueError("this CLAP has no tokenizer; load a folder that holds one to embed text")
        if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        try:
            embeds = []
            for start in range(0, len(prompts), batch_size):
                tokens = self.tokenizer(
                    list(prompts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                out = self.model.text_model(
                    input_ids=tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device)
                )
                embeds.append(self.model.text_projection(out.pooler_output).float().cpu())
        finally:
            self.model.train(was_training)
        result = torch.cat(embeds)
        if normalize:
            result = torch.nn.functional.normalize(result, dim=-1)
        return result.numpy()


__all__ = [
    "FEATURE_OPTIONS",
    "PADDING_MODES",
    "ClapAudioEmbedder",
    "build_feature_extractor",
    "check_audio_config",
    "clip_samples",
    "extract_features",
    "spec_frames",
]
