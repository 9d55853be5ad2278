"""The fixed audio path: no learned parameters.

    oscillators  sample-level kernels of the oscillator bank (phase accumulation, sums)
    synth        the differentiable oscillator bank: harmonic, sinusoids, filtered_noise
    spectral     STFT, log magnitudes, filterbanks, multi-resolution spectral distance
    pitch        the f0 proposal: harmonic-summation salience and tracks per voice
    roughness    Sethares' roughness of a set of partials
    freqfit      f0 recovery by multi-start, coarse-to-fine descent through the bank
    audio        audio files in and out (soundfile and soxr are imported when used)
"""
from pcmusic.dsp import audio, freqfit, oscillators, pitch, roughness, spectral, synth

__all__ = ["audio", "freqfit", "oscillators", "pitch", "roughness", "spectral", "synth"]
