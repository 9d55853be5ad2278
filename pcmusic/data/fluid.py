"""Real sampled instruments: render MIDI notes and phrases with FluidSynth.

Used for tests, benchmarks and corpora of real-instrument audio. Needs the
`fluidsynth` binary and a General MIDI soundfont (Debian: `fluidsynth`,
`timgm6mb-soundfont`); `available()` says whether both are present. Notes are
rendered in one FluidSynth call per batch, each in its own time slot separated
by silence long enough for the release to die out, then cut apart.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from pcmusic.errors import PcmusicError

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts")
DEFAULT_SOUNDFONTS = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2")

# General MIDI programs (0-based) for the instrument families the perception tests use.
GM_PROGRAMS = {
    "piano": 0, "organ": 19, "guitar": 24, "strings": 48, "violin": 40, "cello": 42,
    "trumpet": 56, "brass": 61, "flute": 73, "clarinet": 71, "oboe": 68, "sax": 65,
}


@dataclasses.dataclass(frozen=True)
class Note:
    """One event: MIDI `pitches` sounding together (a chord when several).

    `program` is the 0-based General MIDI program; times are in seconds.
    """
    program: int
    pitches: tuple[int, ...]
    duration_s: float = 1.0
    velocity: int = 100


def find_soundfont(name: str | None = None) -> Path | None:
    """Path of a soundfont: `name` if it is a file, else the first known GM soundfont found."""
    if name is not None and Path(name).is_file():
        return Path(name)
    names = (name,) if name else DEFAULT_SOUNDFONTS
    for directory in SOUNDFONT_DIRS:
        for candidate in names:
            path = Path(directory) / candidate
            if path.is_file():
                return path
    return None


def available(soundfont: str | None = None) -> bool:
    """True when the fluidsynth binary and a soundfont are both present."""
    return shutil.which("fluidsynth") is not None and find_soundfont(soundfont) is not None


def midi_to_hz(pitch: float | np.ndarray, *, a4_hz: float = 440.0) -> np.ndarray:
    """12-TET frequency in Hz of MIDI pitch numbers (A4 = 69)."""
    return a4_hz * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def _write_midi(path: Path, notes: Sequence[Note], *, slot_s: float, tempo_us: int = 500_000) -> None:
    import mido

    ticks_per_beat = 480
    ticks_per_s = ticks_per_beat * 1_000_000 / tempo_us
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=tempo_us, time=0))
    now = 0  # absolute ticks of the last event
    events: list[tuple[int, int, mido.Message]] = []  # (abs tick, order, msg)
    for i, note in enumerate(notes):
        channel = i % 16 if i % 16 != 9 else 10  # channel 10 (index 9) is percussion in GM
        start = round(i * slot_s * ticks_per_s)
        stop = round((i * slot_s + note.duration_s) * ticks_per_s)
        events.append((start, 0, mido.Message("program_change", program=note.program, channel=channel)))
        for p in note.pitches:
            events.append((start, 1, mido.Message("note_on", note=p, velocity=note.velocity, channel=channel)))
            events.append((stop, 2, mido.Message("note_off", note=p, velocity=0, channel=channel)))
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    midi.save(str(path))


def _synthesise(midi_path: Path, sf_path: Path, *, sample_rate: int, gain: float, reverb: bool) -> np.ndarray:
    """FluidSynth's mono float32 rendering of a MIDI file (reverb and chorus on or off)."""
    import soundfile

    effects = "1" if reverb else "0"
    with tempfile.TemporaryDirectory(prefix="pcmusic-fluid-") as tmp:
        wav_path = Path(tmp) / "out.wav"
        cmd = ["fluidsynth", "-ni", "-q", "-R", effects, "-C", effects, "-g", str(gain), "-r", str(sample_rate),
               "-F", str(wav_path), "-T", "wav", "-O", "float", str(sf_path), str(midi_path)]
        result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LANG": "C"})
        if result.returncode != 0 or not wav_path.exists():
            raise PcmusicError(f"fluidsynth failed on {midi_path.name} ({result.returncode}): "
                               f"{result.stderr.strip()[:500]}")
        audio, _ = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    return audio.mean(axis=1)


def render_notes(notes: Sequence[Note], *, sample_rate: int = 16000, soundfont: str | None = None,
                 release_s: float = 1.0, gain: float = 0.5) -> list[np.ndarray]:
    """Render each note (or chord) to its own float32 mono array.

    Each array covers the note's duration plus `release_s` of its release tail,
    `[round((duration_s + release_s) * sample_rate)]`, peak-normalised to 0.9
    when louder than that. Reverb and chorus are off so the pitch is the
    instrument's own. Raises PcmusicError when fluidsynth or the soundfont is missing.
    """

    sf_path = find_soundfont(soundfont)
    if shutil.which("fluidsynth") is None or sf_path is None:
        raise PcmusicError(
            f"cannot render MIDI: fluidsynth binary {'found' if shutil.which('fluidsynth') else 'missing'}, "
            f"soundfont {soundfont or 'GM'} {'found' if sf_path else 'missing'}; "
            "install them (Debian: apt-get install fluidsynth timgm6mb-soundfont)")
    for note in notes:
        if not note.pitches or any(not 0 <= p <= 127 for p in note.pitches):
            raise PcmusicError(f"MIDI pitches must be 0..127, got {note.pitches}")
    slot_s = max(n.duration_s for n in notes) + release_s
    with tempfile.TemporaryDirectory(prefix="pcmusic-fluid-") as tmp:
        midi_path = Path(tmp) / "notes.mid"
        _write_midi(midi_path, notes, slot_s=slot_s)
        mono = _synthesise(midi_path, sf_path, sample_rate=sample_rate, gain=gain, reverb=False)
    slot = round(slot_s * sample_rate)
    out = []
    for i, note in enumerate(notes):
        n = round((note.duration_s + release_s) * sample_rate)
        clip = np.zeros(n, np.float32)
        piece = mono[i * slot: i * slot + n]
        clip[: piece.shape[0]] = piece
        peak = float(np.max(np.abs(clip))) if clip.size else 0.0
        if peak > 0.9:
            clip *= 0.9 / peak
        out.append(clip)
    return out


def render_midi(path: str | Path, *, sample_rate: int = 16000, soundfont: str | None = None,
                gain: float = 0.5, reverb: bool = False, tail_s: float = 0.5) -> np.ndarray:
    """Render a MIDI file (programs, pitch bends and all) to float32 mono audio
    `[n_samples]` at `sample_rate`, `tail_s` of release after the last event, peak at most
    0.9. reverb: FluidSynth's reverb and chorus on (a room), else dry."""
    import mido

    sf_path = find_soundfont(soundfont)
    if shutil.which("fluidsynth") is None or sf_path is None:
        raise PcmusicError("cannot render MIDI: fluidsynth or a GM soundfont is missing; install them "
                           "(Debian: apt-get install fluidsynth timgm6mb-soundfont)")
    length_s = mido.MidiFile(str(path)).length + tail_s
    mono = _synthesise(Path(path), sf_path, sample_rate=sample_rate, gain=gain, reverb=reverb)
    n = int(round(length_s * sample_rate))
    mono = np.pad(mono, (0, max(0, n - mono.shape[0])))[:n]
    peak = float(np.max(np.abs(mono))) if mono.size else 0.0
    return (mono * (0.9 / peak) if peak > 0.9 else mono).astype(np.float32)
