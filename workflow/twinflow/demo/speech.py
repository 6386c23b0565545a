"""Formant-synthesised, speech-like audio: voiced syllables with pauses, and its loudness curve.

Source-filter synthesis: a glottal pulse train with a drifting pitch is shaped by two vowel
formant resonators per syllable; syllables of 120-320 ms are separated by short gaps and longer
pauses. It is not intelligible speech, but has speech's rhythm and spectral structure, so audio
features and mouth motion correlate as in a real recording.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

# (F1, F2) in Hz of five vowels.
VOWELS = np.array([[730, 1090], [530, 1840], [270, 2290], [570, 840], [300, 870]], float)


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def synthesize(seconds: float, sr: int = 16000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(samples (N,) float32 in [-1, 1], mouth_open (N,) float32 in [0, 1])``.

    ``mouth_open`` is the syllable envelope weighted by the vowel's openness (F1), the signal a
    talking face's jaw follows.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    mouth = np.zeros(n)
    t = int(0.2 * sr)
    while t < n:
        length = int(rng.uniform(0.12, 0.32) * sr)
        length = min(length, n - t)
        if length < 0.05 * sr:
            break
        vowel = VOWELS[rng.integers(len(VOWELS))]
        f0 = rng.uniform(110, 190) * (1 + 0.08 * np.linspace(-1, 1, length) * rng.choice([-1, 1]))
        phase = np.cumsum(f0 / sr)
        pulses = np.diff(np.floor(phase), prepend=0.0)
        source = lfilter([1.0], [1.0, -0.95], pulses) + 0.02 * rng.standard_normal(length)
        voiced = _resonator(source, vowel[0], 90, sr) + 0.6 * _resonator(source, vowel[1], 110, sr)
        env = np.sin(np.linspace(0, np.pi, length)) ** 0.7
        out[t : t + length] += voiced * env
        mouth[t : t + length] = np.maximum(
            mouth[t : t + length], env * (vowel[0] / VOWELS[:, 0].max())
        )
        gap = rng.uniform(0.03, 0.12) if rng.random() > 0.15 else rng.uniform(0.3, 0.6)
        t += length + int(gap * sr)
    out /= np.abs(out).max() + 1e-9
    return (0.8 * out).astype(np.float32), mouth.astype(np.float32)
