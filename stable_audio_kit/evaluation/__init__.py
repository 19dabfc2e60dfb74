"""Evaluation: generate from held-out captions and measure the audio (``sak evaluate``)."""
