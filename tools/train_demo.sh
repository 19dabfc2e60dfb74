#!/usr/bin/env bash
# Reproduce the bundled demo model on a CPU (see docs/demo-model.md). Every step resumes: run the
# script again after an interruption and it continues each run from its newest checkpoint.
#
#   [EVAL_CLIPS=N] [REUSE_BUNDLED=1] tools/train_demo.sh [WORK_DIR]          (default WORK_DIR: ./demo-work)
#
# REUSE_BUNDLED=1 retrains only the U-Net (and its timing projection): the bundled model's CLAP and VAE
# go into WORK/stage2 instead of two new runs (about 2 h 10 min saved on a 2-core CPU), and the decoder-only
# VAE fine-tune of the last step is skipped (the bundled VAE has had it).
#
# Steps: catalogue -> base model -> CLAP and VAE (independent: side by side, logs in WORK/*.log) ->
# pipeline with both -> latent shards -> U-Net -> prompt-number embedding added -> U-Net fine-tuned with
# it -> beat-grid inputs added -> U-Net fine-tuned with them -> catalogue with transposed copies -> U-Net
# key input added, fine-tuned on it beside a decoder-only VAE fine-tune -> export -> evaluate -> bundle ->
# step distillation of the bundled U-Net -> the student bundled beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-demo-work}
mkdir -p "$WORK/runs"

run() {  # run NAME KIND CONFIG OVERRIDES...: start or resume a training run
  local name=$1 kind=$2 config=$3; shift 3
  local out="$WORK/runs/$name"
  if [ -d "$out/checkpoints" ] && ls "$out/checkpoints" | grep -q '^step_'; then
    sak train "$kind" "$config" "$@" run.output_dir="$out" --resume
  else
    sak train "$kind" "$config" "$@" run.output_dir="$out"
  fi
}

[ -f "$WORK/catalogue/metadata.jsonl" ] || sak catalogue make "$WORK/catalogue" --clips 2000 --seed 0
[ -d "$WORK/base" ] || sak new-model configs/demo/model.yaml "$WORK/base"

if [ "${REUSE_BUNDLED:-0}" = 1 ]; then
  [ -d "$WORK/stage2" ] || python tools/stage2_from_bundled.py "$WORK/base" "$WORK/stage2"
fi

# CLAP and VAE do not depend on each other: train them side by side, one thread each (on a 2-core
# machine two single-threaded runs beat one two-threaded run by far). The steps after them use every core.
if [ ! -d "$WORK/stage2" ]; then
  OMP_NUM_THREADS=1 run clap clap configs/demo/clap.yaml model="$WORK/base" data.catalogue="$WORK/catalogue" \
    > "$WORK/clap.log" 2>&1 &
  clap_pid=$!
  OMP_NUM_THREADS=1 run vae vae configs/demo/vae.yaml model="$WORK/base" data.catalogue="$WORK/catalogue" \
    > "$WORK/vae.log" 2>&1 &
  vae_pid=$!
  wait "$clap_pid" || { echo "CLAP training failed, see $WORK/clap.log" >&2; exit 1; }
  wait "$vae_pid" || { echo "VAE training failed, see $WORK/vae.log" >&2; exit 1; }
  [ -d "$WORK/with_clap" ] || sak export "$WORK/runs/clap" "$WORK/with_clap"
  # The trained VAE goes into the pipeline that already has the trained CLAP text tower (and clap/).
  sak export "$WORK/runs/vae" "$WORK/stage2" --base "$WORK/with_clap"
fi
# How many held-out melodies keep their f0 and key through the VAE alone (goes into the model card).
[ -f "$WORK/vae_pitch.md" ] || python tools/vae_pitch_check.py "$WORK/catalogue" "$WORK/stage2/vae" \
  --label "the VAE before the U-Net stages" -o "$WORK/vae_pitch.md"
[ -f "$WORK/latents/index.json" ] || sak encode "$WORK/catalogue" --model "$WORK/stage2" -o "$WORK/latents" --text

run unet unet configs/demo/unet.yaml model="$WORK/stage2" data.catalogue="$WORK/catalogue" latents="$WORK/latents"
[ -d "$WORK/unet_timing" ] || sak export "$WORK/runs/unet" "$WORK/unet_timing"
# The numbers of the prompt (the BPM) by value: a zero-initialised embedding, then a fine-tune that learns it.
[ -d "$WORK/stage3" ] || sak extend "$WORK/unet_timing" "$WORK/stage3" --prompt-numbers
run unet_numbers unet configs/demo/unet_numbers.yaml model="$WORK/stage3" data.catalogue="$WORK/catalogue" \
  latents="$WORK/latents"
[ -d "$WORK/numbers" ] || sak export "$WORK/runs/unet_numbers" "$WORK/numbers"
# The beat grid of the caption's tempo as four more U-Net inputs (zero weights), then a fine-tune that learns it.
[ -d "$WORK/stage4" ] || sak extend "$WORK/numbers" "$WORK/stage4" --beat-grid
run unet_beats unet configs/demo/unet_beats.yaml model="$WORK/stage4" data.catalogue="$WORK/catalogue" \
  latents="$WORK/latents"
[ -d "$WORK/beats" ] || sak export "$WORK/runs/unet_beats" "$WORK/beats"
# The key: the same catalogue plus two transposed copies of every tonal training clip (the first 2000 clips and
# the held-out split are byte-identical to WORK/catalogue), encoded with the same VAE encoder.
[ -f "$WORK/catalogue_t/metadata.jsonl" ] || sak catalogue make "$WORK/catalogue_t" --clips 2000 --seed 0 \
  --transpositions 2
[ -f "$WORK/latents_t/index.json" ] || sak encode "$WORK/catalogue_t" --model "$WORK/beats" -o "$WORK/latents_t" --text
# The key as a U-Net input of its own (zero weights), then a fine-tune on it beside the decoder-only VAE
# fine-tune: they do not depend on each other (the encoder and its latents stay fixed), one thread each.
[ -d "$WORK/stage5" ] || sak extend "$WORK/beats" "$WORK/stage5" --key
if [ ! -d "$WORK/final" ] && [ "${REUSE_BUNDLED:-0}" = 1 ]; then
  # The bundled VAE has had its decoder fine-tuned already (same encoder): only the U-Net trains.
  run unet_keys unet configs/demo/unet_keys.yaml model="$WORK/stage5" data.catalogue="$WORK/catalogue_t" \
    latents="$WORK/latents_t"
  sak export "$WORK/runs/unet_keys" "$WORK/final"
elif [ ! -d "$WORK/final" ]; then
  OMP_NUM_THREADS=1 run unet_keys unet configs/demo/unet_keys.yaml model="$WORK/stage5" \
    data.catalogue="$WORK/catalogue_t" latents="$WORK/latents_t" > "$WORK/unet_keys.log" 2>&1 &
  keys_pid=$!
  OMP_NUM_THREADS=1 run vae_decoder vae configs/demo/vae_decoder.yaml model="$WORK/beats" \
    data.catalogue="$WORK/catalogue_t" > "$WORK/vae_decoder.log" 2>&1 &
  decoder_pid=$!
  wait "$keys_pid" || { echo "U-Net training failed, see $WORK/unet_keys.log" >&2; exit 1; }
  wait "$decoder_pid" || { echo "VAE training failed, see $WORK/vae_decoder.log" >&2; exit 1; }
  [ -d "$WORK/keys" ] || sak export "$WORK/runs/unet_keys" "$WORK/keys"
  sak export "$WORK/runs/vae_decoder" "$WORK/final" --base "$WORK/keys"
fi
[ -f "$WORK/vae_decoder_pitch.md" ] || python tools/vae_pitch_check.py "$WORK/catalogue" "$WORK/final/vae" \
  --label "the bundled VAE" -o "$WORK/vae_decoder_pitch.md"
# The exports carry the CLAP run's full model along as final/clap, which `sak evaluate` uses.
# EVAL_CLIPS=N evaluates the first N held-out clips only (two generations each: the model and the floor).
[ -f "$WORK/report/report.json" ] || sak evaluate --model "$WORK/final" --catalogue "$WORK/catalogue" \
  ${EVAL_CLIPS:+--n "$EVAL_CLIPS"} -o "$WORK/report"
python tools/bundle_demo.py "$WORK"   # float16 copy + model card into stable_audio_kit/pretrained/demo
# Step distillation of the bundled U-Net (the float16-rounded weights users sample): a student that takes 8 DDIM
# steps with the guidance baked in, from 16 guided UniPC steps of the teacher; then into the bundle as unet_distilled/.
run distill distill configs/demo/distill.yaml model=stable_audio_kit/pretrained/demo data.catalogue="$WORK/catalogue_t" \
  latents="$WORK/latents_t"
python tools/bundle_distilled.py "$WORK/runs/distill"
echo "demo model ready in $WORK/final and bundled; report in $WORK/report"
