"""Notes in Hz to and from standard MIDI files, exact to the cent by pitch bends.

A note of f0 Hz is written as the nearest MIDI key m = round(69 + 12 log2(f0 / 440))
with a pitch bend of the remaining cents (within +-50), sent on the note's channel
just before its note-on; each voice has its own channel (9, the GM drum channel, is
skipped), so 15 voices at most, and its own track. The bend range is set on every
channel by RPN 0 (BEND_RANGE_SEMITONES; a reader that ignores RPNs assumes 2, the GM
default, which is what is written). Times are seconds at 120 BPM (TICKS_PER_BEAT
ticks per beat, so 1/960 s per tick); velocity maps loudness in dB re full scale
linearly from -60 dB (1) to 0 dB (127).

Notes are records `[n, >=3]` with columns onset_s, offset_s, f0_hz[, loudness_db, ...]
(`pcmusic.model.note_prior.NOTE_COLUMNS`), one array per voice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from pcmusic import files
from pcmusic.errors import PcmusicError

TICKS_PER_BEAT = 480
TEMPO_US = 500_000                 # 120 BPM: 960 ticks per second
BEND_RANGE_SEMITONES = 2
BEND_MAX = 8191
CHANNELS = tuple(c for c in range(16) if c != 9)
DB_RANGE = 60.0


def _ticks(seconds: float) -> int:
    return int(round(seconds * 1e6 / TEMPO_US * TICKS_PER_BEAT))


def key_and_bend(f0_hz: float, *, bend_range: float = BEND_RANGE_SEMITONES) -> tuple[int, int]:
    """(MIDI key, pitch-bend value in -8192..8191) that sound `f0_hz`."""
    exact = 69.0 + 12.0 * np.log2(f0_hz / 440.0)
    key = int(np.clip(np.round(exact), 0, 127))
    bend = int(np.clip(np.round((exact - key) / bend_range * 8192.0), -8192, BEND_MAX))
    return key, bend


def _velocity(loudness_db: float) -> int:
    return int(np.clip(np.round(127.0 * (1.0 + loudness_db / DB_RANGE)), 1, 127))


def _check(voices: Sequence) -> list[np.ndarray]:
    if len(voices) > len(CHANNELS):
        raise PcmusicError(f"MIDI holds at most {len(CHANNELS)} voices (one channel each, drums "
                           f"skipped); got {len(voices)}")
    out = []
    for v, notes in enumerate(voices):
        a = np.asarray(notes, np.float64).reshape(-1, np.shape(notes)[-1] if np.ndim(notes) == 2 else 5)
        if a.shape[0] and (a.shape[1] < 3 or not np.all(np.isfinite(a[:, :3])) or np.any(a[:, 2] <= 0)
                           or np.any(a[:, 1] < a[:, 0]) or np.any(a[:, 0] < 0)):
            raise PcmusicError(f"voice {v}: notes must be finite [n, >=3] records (onset_s >= 0, "
                               "offset_s >= onset_s, f0_hz > 0)")
        out.append(a[np.argsort(a[:, 0], kind="stable")] if a.shape[0] else a.reshape(0, max(a.shape[1], 3)))
    return out


def write(path: str | Path, voices: Sequence, *, overwrite: bool = False,
          program: int = 0) -> Path:
    """Write notes (one records array per voice) as a type-1 MIDI file, atomically.

    Within a voice a note is cut at the next note's onset (a channel bends all its
    sounding notes alike). program: the GM program of every channel (0: piano).
    Refuses to replace an existing file unless `overwrite`.
    """
    import mido

    path = Path(path)
    if path.exists() and not overwrite:
        raise PcmusicError(f"{path} exists; nothing was written: choose another path or overwrite it "
                           "(--force)")
    voices = _check(voices)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    head = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0)])
    mid.tracks.append(head)
    for notes, channel in zip(voices, CHANNELS):
        events = [(0, 0, mido.Message("program_change", channel=channel, program=program)),
                  (0, 0, mido.Message("control_change", channel=channel, control=101, value=0)),
                  (0, 0, mido.Message("control_change", channel=channel, control=100, value=0)),
                  (0, 0, mido.Message("control_change", channel=channel, control=6, value=BEND_RANGE_SEMITONES)),
                  (0, 0, mido.Message("control_change", channel=channel, control=38, value=0))]
        for i, row in enumerate(notes):
            on, off, f0 = float(row[0]), float(row[1]), float(row[2])
            if i + 1 < len(notes):
                off = min(off, float(notes[i + 1][0]))
            key, bend = key_and_bend(f0)
            velocity = _velocity(float(row[3])) if row.shape[0] > 3 and np.isfinite(row[3]) else 100
            t_on, t_off = _ticks(on), max(_ticks(off), _ticks(on) + 1)
            # at one tick, note-offs come first, then the bend, then the note-on
            events.append((t_on, 1, mido.Message("pitchwheel", channel=channel, pitch=bend)))
            events.append((t_on, 2, mido.Message("note_on", channel=channel, note=key, velocity=velocity)))
            events.append((t_off, 0, mido.Message("note_off", channel=channel, note=key, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    fd, tmp = files.mkstemp_beside(path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            mid.save(file=f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: str | Path) -> list[np.ndarray]:
    """The notes of a MIDI file, one float64 `[n, 5]` records array per channel that plays
    notes (channel order; drums included), f0 from key and the channel's pitch bend at
    the note-on (bend range from RPN 0, else 2 semitones), loudness_db from velocity,
    confidence 1."""
    import mido

    path = Path(path)
    try:
        mid = mido.MidiFile(str(path))
    except FileNotFoundError:
        raise PcmusicError(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise PcmusicError(f"{path}: not a readable MIDI file ({err})") from None
    bend = {c: 0 for c in range(16)}
    bend_range = {c: float(BEND_RANGE_SEMITONES) for c in range(16)}
    rpn = {c: [127, 127] for c in range(16)}
    sounding: dict[tuple[int, int], list] = {}
    notes: dict[int, list] = {}
    now = 0.0
    for msg in mid:
        now += msg.time
        if msg.is_meta or not hasattr(msg, "channel"):
            continue
        c = msg.channel
        if msg.type == "control_change":
            if msg.control in (101, 100):
                rpn[c][0 if msg.control == 101 else 1] = msg.value
            elif msg.control == 6 and rpn[c] == [0, 0]:
                bend_range[c] = float(msg.value)
        elif msg.type == "pitchwheel":
            bend[c] = msg.pitch
        elif msg.type == "note_on" and msg.velocity > 0:
            semis = msg.note + bend[c] / 8192.0 * bend_range[c]
            f0 = 440.0 * 2.0 ** ((semis - 69.0) / 12.0)
            db = (msg.velocity / 127.0 - 1.0) * DB_RANGE
            sounding.setdefault((c, msg.note), []).append([now, now, f0, db, 1.0])
        elif msg.type in ("note_off", "note_on"):
            started = sounding.get((c, msg.note))
            if started:
                row = started.pop(0)
                row[1] = now
                notes.setdefault(c, []).append(row)
    for (c, _), rows in sounding.items():       # never released: end at the file's end
        for row in rows:
            row[1] = now
            notes.setdefault(c, []).append(row)
    out = []
    for c in sorted(notes):
        a = np.asarray(notes[c], np.float64)
        out.append(a[np.argsort(a[:, 0], kind="stable")])
    return out
