"""``sak generate``: arguments, outputs, devices, models and prompt lists (batch files)."""

from __future__ import annotations

import pytest

from .conftest import Row, check_cli_row, fill, params, run_cli

BASE = ("generate", "a calm piano melody", "--model", "{model}", "--seconds", "0.25", "--steps", "2")
OUT = ("-o", "{work}/out.wav")

ARGUMENTS = [
    Row("no-prompt", ("generate", "--model", "{model}", *OUT), "give one of a PROMPT, --prompts FILE"),
    Row("prompt-and-list", (*BASE, "--prompts", "{inputs}/two.txt", *OUT), "give one of a PROMPT, --prompts FILE"),
    Row("steps-0", (*BASE, "--steps", "0", *OUT), "--steps must be an integer >= 1, got 0"),
    Row("steps-negative", (*BASE, "--steps", "-3", *OUT), "--steps must be an integer >= 1, got -3"),
    Row("steps-word", (*BASE, "--steps", "many", *OUT), "argument --steps: invalid int value: 'many'"),
    Row("steps-float", (*BASE, "--steps", "2.5", *OUT), "argument --steps: invalid int value: '2.5'"),
    Row("batch-0", (*BASE, "--batch", "0", *OUT), "--batch must be >= 1, got 0"),
    Row("tail-negative", (*BASE, "--tail", "-1", *OUT), "--tail must be >= 0, got -1.0"),
    Row("tail-nan", (*BASE, "--tail", "nan", *OUT), "--tail must be finite, got nan"),
    Row("tail-word", (*BASE, "--tail", "long", *OUT), "argument --tail: invalid float value: 'long'"),
    Row("precision-unknown", (*BASE, "--precision", "fp16", *OUT), "argument --precision: invalid choice: 'fp16'"),
    Row(
        "griffin-lim-negative",
        (*BASE, "--griffin-lim-iters", "-2", *OUT),
        "--griffin-lim-iters must be an integer >= 0, got -2",
    ),
    Row(
        "griffin-lim-without-spectral-vae",
        (*BASE, "--griffin-lim-iters", "8", *OUT),
        "this model's VAE (AudioVAE) has no Griffin-Lim decoder",
    ),
    Row("cfg-nan", (*BASE, "--cfg", "nan", *OUT), "--cfg must be finite, got nan"),
    Row("cfg-inf", (*BASE, "--cfg", "inf", *OUT), "--cfg must be finite, got inf"),
    Row("cfg-word", (*BASE, "--cfg", "high", *OUT), "argument --cfg: invalid float value: 'high'"),
    Row("seed-negative", (*BASE, "--seed", "-1", *OUT), "--seed must be in [0, 2**64 - 1], got -1"),
    Row(
        "seed-2**64",
        (*BASE, "--seed", "18446744073709551616", *OUT),
        "--seed must be in [0, 2**64 - 1], got 18446744073709551616",
    ),
    Row("seed-huge", (*BASE, "--seed", "1" + "0" * 30, *OUT), "got 1" + "0" * 30),
    Row("seed-float", (*BASE, "--seed", "1.5", *OUT), "argument --seed: invalid int value: '1.5'"),
    Row("seconds-0", (*BASE, "--seconds", "0", *OUT), "seconds must be a finite number > 0, got '0'"),
    Row("seconds-negative", (*BASE, "--seconds", "-1", *OUT), "seconds must be a finite number > 0, got '-1'"),
    Row("seconds-nan", (*BASE, "--seconds", "nan", *OUT), "seconds must be a finite number > 0, got 'nan'"),
    Row("seconds-inf", (*BASE, "--seconds", "inf", *OUT), "seconds must be a finite number > 0, got 'inf'"),
    Row("seconds-word", (*BASE, "--seconds", "long", *OUT), "seconds must be a number, got 'long'"),
    Row("seconds-below-one-sample", (*BASE, "--seconds", "0.00001", *OUT), "shorter than one sample"),
    Row("scheduler-unknown", (*BASE, "--scheduler", "fastest", *OUT), "unknown scheduler 'fastest'"),
    Row("set-no-equals", (*BASE, "--set", "bpm", *OUT), "--set takes NAME=VALUE, got 'bpm'"),
    Row("set-no-name", (*BASE, "--set", "=96", *OUT), "--set takes NAME=VALUE, got '=96'"),
    Row("set-unknown-input", (*BASE, "--set", "colour=red", *OUT), "'colour'"),
    Row("bpm-0", (*BASE, "--bpm", "0", *OUT), "bpm must be a finite number > 0, got 0"),
    Row("bpm-negative", (*BASE, "--bpm", "-96", *OUT), "bpm must be a finite number > 0, got -96"),
    Row("bpm-nan", (*BASE, "--bpm", "nan", *OUT), "bpm must be a finite number > 0, got nan"),
    Row("bpm-model-without-grid", (*BASE, "--bpm", "96", *OUT), "bpm"),
    Row("key-unknown", (*BASE, "--key", "H major", *OUT), "'H major'"),
    Row("key-model-without-key", (*BASE, "--key", "C major", *OUT), "key"),
    Row("lora-missing", (*BASE, "--lora", "{work}/nope", *OUT), "--lora: '{work}/nope' is not a LoRA adapter"),
    Row("lora-not-an-adapter", (*BASE, "--lora", "{model}", *OUT), "--lora: '{model}' is not a LoRA adapter folder"),
    Row("lora-scale-nan", (*BASE, "--lora", "{work}/adapter:nan", *OUT), "the scale must be finite"),
    Row("unknown-option", (*BASE, "--colour", "red", *OUT), "unrecognized arguments: --colour red"),
]

OUTPUTS = [
    Row("output-mp3", (*BASE, "-o", "{work}/out.mp3"), "'{work}/out.mp3'"),
    Row("output-no-suffix", (*BASE, "-o", "{work}/out"), "'{work}/out'"),
    Row("output-is-a-folder", (*BASE, "-o", "{inputs}/adir.wav"), "is a directory"),
    Row("output-under-a-file", (*BASE, "-o", "{inputs}/afile.txt/out.wav"), "is not a folder"),
    Row("output-in-proc", (*BASE, "-o", "/proc/out.wav"), "'/proc/out.wav' cannot be written"),
    Row("output-in-sys", (*BASE, "-o", "/sys/kernel/out.wav"), "'/sys/kernel/out.wav' cannot be written"),
    Row("format-unknown", (*BASE, "--format", "mp3", *OUT), "unknown audio format 'mp3'"),
    Row("format-other-suffix", (*BASE, "--format", "flac16", *OUT), "format 'flac16' writes .flac files"),
    Row("loudness-and-no-normalize", (*BASE, "--loudness", "-14", "--no-normalize", *OUT), "not both"),
    Row("loudness-nan", (*BASE, "--loudness", "nan", *OUT), "nan"),
    Row("loudness-positive", (*BASE, "--loudness", "10", *OUT), "10"),
    Row("fade-in-negative", (*BASE, "--fade-in", "-5", *OUT), "-5"),
    Row("fade-out-nan", (*BASE, "--fade-out", "nan", *OUT), "nan"),
    Row("sample-rate-0", (*BASE, "--sample-rate", "0", *OUT), "got 0"),
    Row("sample-rate-negative", (*BASE, "--sample-rate", "-8000", *OUT), "got -8000"),
]

# The bundled model has a beat grid: tempi from 0 to pipe.max_bpm (1292).
BUNDLED = ("generate", "a drum groove", "--seconds", "0.5", "--steps", "2", *OUT)
TEMPI = [
    Row("negative-prompt-tempo", (*BUNDLED, "--negative", "at 5000 bpm"), "the negative prompt 'at 5000 bpm' names"),
    Row("prompt-tempo", ("generate", "drums at 5000 bpm", *BUNDLED[2:]), "5000"),
    Row("bpm-beyond-grid", (*BUNDLED, "--bpm", "5000"), "5000"),
    Row("key-unknown-bundled", (*BUNDLED, "--key", "C lydian"), "'C lydian'"),
]

DEVICES = [
    Row("device-unknown", (*BASE, "--device", "gpu", *OUT), "unknown device 'gpu'"),
    Row("device-bad-index", (*BASE, "--device", "cuda:x", *OUT), "unknown device 'cuda:x'"),
    Row("device-cuda-missing", (*BASE, "--device", "cuda", *OUT), "device 'cuda' is not available"),
    Row("device-mps-missing", (*BASE, "--device", "mps", *OUT), "device 'mps' is not available"),
]

MODELS = [
    Row("model-missing", (*BASE[:2], "--model", "{work}/nope", *OUT), "model directory '{work}/nope' does not exist"),
    Row("model-empty-folder", (*BASE[:2], "--model", "{inputs}/empty_dir", *OUT), "model_index.json is missing"),
    Row("model-is-a-file", (*BASE[:2], "--model", "{inputs}/afile.txt", *OUT), "does not exist"),
    Row("model-truncated-weights", (*BASE[:2], "--model", "{m_truncated_unet}", *OUT), "is truncated"),
    Row("model-short-weights", (*BASE[:2], "--model", "{m_short_unet}", *OUT), "is truncated or corrupt"),
    Row("model-empty-weights", (*BASE[:2], "--model", "{m_empty_unet_weights}", *OUT), "is truncated (0 bytes"),
    Row("model-zeroed-vae", (*BASE[:2], "--model", "{m_zeroed_vae}", *OUT), "vae/diffusion_pytorch_model.safetensors"),
    Row("model-zeroed-text", (*BASE[:2], "--model", "{m_zeroed_text_encoder}", *OUT), "is zeroed"),
    Row("model-garbage-header", (*BASE[:2], "--model", "{m_garbage_projection}", *OUT), "header is not JSON"),
    Row("model-missing-unet", (*BASE[:2], "--model", "{m_missing_unet}", *OUT), "missing component(s): unet"),
    Row("model-missing-index", (*BASE[:2], "--model", "{m_missing_index}", *OUT), "model_index.json is missing"),
    Row("model-bad-index", (*BASE[:2], "--model", "{m_bad_index_json}", *OUT), "model_index.json' is not valid JSON"),
    Row("model-bad-config", (*BASE[:2], "--model", "{m_bad_unet_config}", *OUT), "unet/config.json' is not valid"),
    Row("model-bad-tokenizer", (*BASE[:2], "--model", "{m_bad_tokenizer_json}", *OUT), "tokenizer.json' is not"),
    Row("model-mismatched", (*BASE[:2], "--model", "{m_mismatched_latents}", *OUT), "unet.in_channels=7"),
]

# The tiny model with its distilled student (4 steps, guidance 7 baked in) in unet_distilled/.
STUDENT = ("generate", "a calm piano melody", "--model", "{distilled}", "--unet", "distilled", "--seconds", "0.25")
DISTILLED = [
    Row("unet-unknown", (*BASE, "--unet", "fast", *OUT), "argument --unet: invalid choice: 'fast'"),
    Row("unet-distilled-missing", (*BASE, "--unet", "distilled", *OUT), "'{model}' holds no distilled U-Net"),
    Row("distilled-other-steps", (*STUDENT, "--steps", "15", *OUT), "num_inference_steps=15 but this distilled"),
    Row("distilled-other-cfg", (*STUDENT, "--cfg", "3", *OUT), "guidance_scale=3 but this distilled U-Net has"),
    Row("distilled-negative", (*STUDENT, "--negative", "hiss", *OUT), "negative_prompt 'hiss': a distilled U-Net"),
    Row("distilled-scheduler", (*STUDENT, "--scheduler", "unipc", *OUT), "--scheduler 'unipc' cannot sample the"),
    Row(
        "distilled-list-negative",
        (*STUDENT[:1], *STUDENT[2:], "--prompts", "{inputs}/negative.csv", "-o", "{work}/outs"),
        "row 1 ('rock drums'): negative_prompt 'hiss'",
    ),
]

LIST = ("generate", "--model", "{model}", "--steps", "2", "--seconds", "0.25", "-o", "{work}/outs", "--prompts")
BATCH_FILES = [
    Row("list-missing", (*LIST, "{work}/nope.txt"), "prompt file '{work}/nope.txt' does not exist"),
    Row("list-is-a-folder", (*LIST, "{inputs}/empty_dir"), "prompt file '{inputs}/empty_dir' does not exist"),
    Row("list-empty", (*LIST, "{inputs}/empty.txt"), "holds no prompts"),
    Row("list-blank-lines", (*LIST, "{inputs}/blank.txt"), "holds no prompts"),
    Row("list-not-utf8", (*LIST, "{inputs}/latin1.txt"), "latin1.txt' is not UTF-8"),
    Row("csv-no-prompt-column", (*LIST, "{inputs}/noprompt.csv"), "needs a 'prompt' column"),
    Row("csv-header-only", (*LIST, "{inputs}/header_only.csv"), "holds no prompts"),
    Row("csv-open-quote-at-end", (*LIST, "{inputs}/open_quote_at_end.csv"), "open_quote_at_end.csv:3: "),
    Row("csv-open-quote-mid", (*LIST, "{inputs}/open_quote_mid.csv"), "open_quote_mid.csv:2: a quoted cell runs"),
    Row("csv-stray-quote", (*LIST, "{inputs}/stray_quote.csv"), "stray_quote.csv:2: malformed CSV row"),
    Row("csv-extra-cells", (*LIST, "{inputs}/extra_cells.csv"), "extra_cells.csv:2: 3 cells for 2 columns"),
    Row("csv-word-seconds", (*LIST, "{inputs}/bad_seconds.csv"), "bad_seconds.csv:2: seconds must be a number"),
    Row("csv-zero-seconds", (*LIST, "{inputs}/zero_seconds.csv"), "zero_seconds.csv:2: seconds must be a finite"),
    Row("csv-nan-seconds", (*LIST, "{inputs}/nan_seconds.csv"), "nan_seconds.csv:2: seconds must be a finite"),
    Row("csv-negative-seed", (*LIST, "{inputs}/negative_seed.csv"), "negative_seed.csv:2: seed must be in"),
    Row("csv-huge-seed", (*LIST, "{inputs}/huge_seed.csv"), "got 18446744073709551616"),
    Row("csv-word-seed", (*LIST, "{inputs}/word_seed.csv"), "seed must be an integer, got 'seven'"),
    Row("csv-empty-prompt", (*LIST, "{inputs}/empty_prompt.csv"), "prompt must be a non-empty string, got ''"),
    Row("jsonl-invalid", (*LIST, "{inputs}/bad.jsonl"), "bad.jsonl:1: invalid JSON"),
    Row("jsonl-list-line", (*LIST, "{inputs}/list.jsonl"), "list.jsonl:1: each line must be a JSON object"),
    Row("jsonl-number-prompt", (*LIST, "{inputs}/number_prompt.jsonl"), "prompt must be a non-empty string, got 5"),
    Row("jsonl-no-prompt", (*LIST, "{inputs}/no_prompt.jsonl"), "prompt must be a non-empty string, got None"),
    Row("jsonl-negative-seconds", (*LIST, "{inputs}/negative_seconds.jsonl"), "got -2"),
    Row("jsonl-bool-seed", (*LIST, "{inputs}/bool_seed.jsonl"), "seed must be an integer, got True"),
    Row("jsonl-word-seconds", (*LIST, "{inputs}/word_seconds.jsonl"), "seconds must be a number, got 'long'"),
    Row(
        "list-seed-plus-row-overflows",
        (*LIST, "{inputs}/two.txt", "--seed", "18446744073709551615"),
        "two.txt:2 (--seed + row index): seed must be in [0, 2**64 - 1]",
    ),
    Row(
        "list-output-is-a-file",
        (
            "generate",
            "--model",
            "{model}",
            "--seconds",
            "0.25",
            "--prompts",
            "{inputs}/two.txt",
            "-o",
            "{inputs}/afile.txt",
        ),
        "-o must be a folder",
    ),
    Row(
        "list-output-in-proc",
        ("generate", "--model", "{model}", "--seconds", "0.25", "--prompts", "{inputs}/two.txt", "-o", "/proc/outs"),
        "cannot be written",
    ),
    Row("list-bpm-model-without-grid", (*LIST, "{inputs}/two.txt", "--bpm", "96"), "bpm"),
]


@pytest.mark.parametrize("row", params(ARGUMENTS + OUTPUTS + TEMPI + DEVICES + MODELS + DISTILLED + BATCH_FILES))
def test_generate_refuses(row, places, unchanged, capsys, caplog):
    result = run_cli(fill(row.args, places), capsys, caplog)
    check_cli_row(Row(row.id, row.args, row.fragment.format(**places), row.code, row.stream), result, "generate")
