"""How the network hears its own output: a perturbation between its sound and its ears.

Generation's refinement and listening (`pcmusic.generation`, `pcmusic.listening`) hear
the model's render through a `Hearing` (identity by default): a level change, a muffling
room, added noise. It tests whether the model serves its intent under conditions it
cannot control directly.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from pcmusic import perception


@dataclasses.dataclass(frozen=True)
class Hearing:
    """How the network hears its own output (identity by default).

    gain_db: level change. lowpass_hz: a first-order low-pass ("a muffling room"),
    None for none. noise_db: white noise at this level re the reference RMS (None)."""

    gain_db: float = 0.0
    lowpass_hz: float | None = None
    noise_db: float | None = None

    def apply(self, audio: jax.Array, *, sample_rate: int, key: jax.Array) -> jax.Array:
        """Perturb float32 audio `[B, n]` (differentiable; the noise is fixed by `key`)."""
        out = audio * jnp.float32(10 ** (self.gain_db / 20))
        if self.lowpass_hz is not None:
            freqs = jnp.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate).astype(jnp.float32)
            ratio = freqs / jnp.float32(self.lowpass_hz)
            response = jax.lax.complex(1.0 / (1.0 + ratio ** 2), -ratio / (1.0 + ratio ** 2))
            out = jnp.fft.irfft(jnp.fft.rfft(out, axis=-1) * response[None],
                                n=audio.shape[-1], axis=-1)
        if self.noise_db is not None:
            level = perception.REFERENCE_RMS * 10 ** (self.noise_db / 20)
            out = out + jnp.float32(level) * jax.random.normal(key, audio.shape, jnp.float32)
        return out
