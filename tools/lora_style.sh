#!/usr/bin/env bash
# A LoRA fine-tune of the bundled model on a style it never heard, measured before and after. Every step resumes:
# run the script again after an interruption and it continues from where it stopped (training from its newest
# checkpoint).
#
#   [CLIPS=400] [STEPS=600] [RANK=16] [EVAL_CLIPS=40] nice -n 10 tools/lora_style.sh [WORK_DIR]
#                                                                           (default WORK_DIR: ./lora-style-work)
#
# Steps: a catalogue of instruments the default catalogue never draws (vibraphone, kalimba, steel drums, fretless
# bass; no drums) -> latent shards with the bundled VAE -> `sak evaluate` of the bundled model on its held-out
# clips -> LoRA run on the bundled model -> the adapter, and a pipeline with it merged in -> `sak evaluate` of
# that on the style's held-out clips, and of both models on the demo catalogue's (what the adapter keeps of the
# base) -> WORK/summary.md (the run of docs/lora-style.md). Needs the [demo] and [eval] extras.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-lora-style-work}
CLIPS=${CLIPS:-400}
STEPS=${STEPS:-600}
RANK=${RANK:-16}
EVAL_CLIPS=${EVAL_CLIPS:-40}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STYLE="vibraphone,kalimba,steel drums,fretless bass"
BASE=$(python -c "from stable_audio_kit.pipeline import DEFAULT_MODEL_DIR; print(DEFAULT_MODEL_DIR)")
mkdir -p "$WORK/eval"

evaluate() {  # evaluate NAME MODEL CATALOGUE
  [ -f "$WORK/eval/$1/report.json" ] || sak evaluate --model "$2" --catalogue "$3" --n "$EVAL_CLIPS" \
    --no-timing-floor -o "$WORK/eval/$1"
}

[ -f "$WORK/style/metadata.jsonl" ] || sak catalogue make "$WORK/style" --clips "$CLIPS" --seed 1 \
  --instruments "$STYLE" --grooves none
[ -f "$WORK/latents/index.json" ] || sak encode "$WORK/style" --model "$BASE" -o "$WORK/latents" --text
evaluate style-before "$BASE" "$WORK/style"

run=(configs/demo/unet.yaml model="$BASE" data.catalogue="$WORK/style" latents="$WORK/latents"
  run.output_dir="$WORK/run" run.max_steps="$STEPS" run.checkpoint_every=50 run.valid_every=100
  optim.lr=1e-3 optim.warmup_steps=50 valid_samples=0 lora.rank="$RANK")
if [ -d "$WORK/run/checkpoints" ] && ls "$WORK/run/checkpoints" | grep -q '^step_'; then
  sak train unet "${run[@]}" --resume
else
  sak train unet "${run[@]}"
fi
[ -d "$WORK/adapter" ] || sak export "$WORK/run" "$WORK/adapter"
[ -d "$WORK/merged" ] || sak export "$WORK/run" "$WORK/merged" --merge-lora
evaluate style-after "$WORK/merged" "$WORK/style"

[ -f "$WORK/demo/metadata.jsonl" ] || sak catalogue make "$WORK/demo" --clips 2000 --seed 0
evaluate demo-before "$BASE" "$WORK/demo"
evaluate demo-after "$WORK/merged" "$WORK/demo"

python - "$WORK" <<'EOF'
import json
import sys
from pathlib import Path

from stable_audio_kit.evaluation.report import LOWER_IS_BETTER, REPORT_ROWS

work = Path(sys.argv[1])
reports = {name: json.loads((work / "eval" / name / "report.json").read_text()) for name in
           ("style-before", "style-after", "demo-before", "demo-after")}
adapter = work / "adapter" / "pytorch_lora_weights.safetensors"
lines = [
    "# LoRA on a new style: the bundled model before and after",
    "",
    f"Style catalogue: `{work / 'style'}` (vibraphone, kalimba, steel drums, fretless bass; no drums). Adapter: "
    f"{adapter.stat().st_size / 2**20:.2f} MB. Held-out clips per evaluation: {reports['style-before']['n']} "
    f"(style), {reports['demo-before']['n']} (demo catalogue).",
    "",
    "| metric | style: before | style: after | style: real | demo: before | demo: after | demo: real |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
def cell(report, condition, key):
    value = report["summary"][condition].get(key)
    return "–" if value is None else f"{value:.3f}"
for key, label in REPORT_ROWS:
    if all(r["summary"]["model"].get(key) is None for r in reports.values()):
        continue
    arrow = " ↓" if key in LOWER_IS_BETTER else ""
    cells = [cell(reports[n], "model", key) for n in ("style-before", "style-after")]
    cells.append(cell(reports["style-before"], "real", key))
    cells += [cell(reports[n], "model", key) for n in ("demo-before", "demo-after")]
    cells.append(cell(reports["demo-before"], "real", key))
    lines.append(f"| {label}{arrow} | " + " | ".join(cells) + " |")
text = "\n".join(lines) + "\n"
(work / "summary.md").write_text(text)
print(text)
EOF
