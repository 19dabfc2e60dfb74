"""The decoder's phase: Griffin-Lim iterations against decode time and how far the audio is from its magnitudes.

    python benchmarks/griffin_lim.py --catalogue CATALOGUE [--clips 16] [--iters 4 8 16 32 64] [--threads 1]

Every clip (the first held-out clips of a demo catalogue, `sak catalogue make`) goes through the bundled
model's VAE: encoded, its magnitudes predicted by the decoder, and its phase found by fast Griffin-Lim with each
number of iterations. Two errors per setting, averaged over the clips: the spectral convergence
``|| |STFT(audio)| - magnitudes || / || magnitudes ||`` (how consistent the phase is with the magnitudes; it is
what Griffin-Lim lowers, and what phase artifacts are made of), and the log-mel L1 distance to the original
clip (the whole round trip, VAE error included). Then the decode time of 10 s of audio. `sak evaluate`'s
metrics barely see the phase, so this is the check the number of iterations is chosen with. Prints a
markdown table with the load average and writes it to benchmarks/results/griffin_lim.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "griffin_lim.md"


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_fft=1024, hop_length=256, n_mels=80)
    return np.log10(mel + 1e-5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", required=True, type=Path)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--iters", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from stable_audio_kit import StableAudioKitPipeline
    from stable_audio_kit.audio import load_audio
    from stable_audio_kit.utils import atomic_write_text
    from stable_audio_kit.vae.spectral import griffin_lim, stft_same

    pipe = StableAudioKitPipeline.from_pretrained()
    vae, decoder, sr = pipe.vae, pipe.vae.decoder, pipe.sample_rate
    rows = [json.loads(line) for line in (args.catalogue / "metadata.jsonl").read_text().splitlines() if line.strip()]
    held = [r for r in rows if r.get("split") == "valid"][: args.clips]
    if not held:
        raise SystemExit(f"griffin_lim.py: {args.catalogue} has no held-out clips")
    errors = {iters: [] for iters in args.iters}
    with torch.no_grad():
        for row in held:
            audio = load_audio(args.catalogue / row["path"], sr, 1)
            out = decoder.predict(vae.encode(torch.from_numpy(audio)[None]).latent_dist.mode())
            b, c, _, bins, t = out.shape
            mag = torch.exp(out[:, :, 0].clamp(max=math.log(1e2))).reshape(b * c, bins, t)
            reference = log_mel(audio[0], sr)
            for iters in args.iters:
                rebuilt = griffin_lim(mag, decoder.n_fft, decoder.stft_hop, decoder.window, iters)
                again = stft_same(rebuilt, decoder.n_fft, decoder.stft_hop, decoder.window).abs()
                convergence = float(torch.linalg.norm(again - mag) / torch.linalg.norm(mag))
                mel = log_mel(rebuilt[0, : audio.shape[-1]].numpy(), sr)
                frames = min(mel.shape[1], reference.shape[1])
                errors[iters].append((convergence, float(np.mean(np.abs(mel[:, :frames] - reference[:, :frames])))))

        latents = torch.randn(
            1, vae.latent_channels, pipe.unet.config.sample_size, generator=torch.Generator().manual_seed(0)
        )
        times = {}
        for iters in args.iters:
            vae.set_griffin_lim_iters(iters)
            best = math.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                pipe.decode_latents(latents)
                best = min(best, time.perf_counter() - start)
            times[iters] = best

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# Griffin-Lim iterations",
        "",
        f"`python benchmarks/griffin_lim.py`: the bundled model's VAE on the first {len(held)} held-out clips of the "
        f"demo catalogue; decode time of {pipe.max_seconds:.0f} s of audio, best of {args.repeats}; {args.threads} "
        f"torch thread(s); {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"load average {load}.",
        "",
        "| iterations | spectral convergence ↓ | log-mel L1 to the clip ↓ | decode 10 s (s) |",
        "|---:|---:|---:|---:|",
    ]
    for iters in args.iters:
        convergence, mel = np.mean(errors[iters], axis=0)
        lines.append(f"| {iters} | {convergence:.3f} | {mel:.3f} | {times[iters]:.3f} |")
    text = "\n".join([*lines, ""])
    print(text)
    atomic_write_text(RESULTS, text)


if __name__ == "__main__":
    main()
