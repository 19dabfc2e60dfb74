"""Lets diffusers' DiffusionPipeline.from_pretrained(this_folder, trust_remote_code=True) load this model:
it imports the pipeline class from the installed stable-audio-kit package."""

from stable_audio_kit.pipeline import StableAudioKitPipeline  # noqa: F401
