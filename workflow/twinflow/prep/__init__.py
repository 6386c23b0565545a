"""Preprocessing stages: probe, normalise video, audio, frames, clips, photo."""
