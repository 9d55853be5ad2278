"""Notes by Spotify's basic-pitch on every render of a folder, for the transcription bench.

Runs in basic-pitch's own venv (never a pcmusic dependency):

    python3 -m venv bench-venv && bench-venv/bin/pip install basic-pitch
    PCMUSIC_BENCH_RENDERS=runs/renders pcmusic bench --only transcribe   # writes the renders
    bench-venv/bin/python experiments/anchors/basic_pitch_notes.py runs/renders
    PCMUSIC_BENCH_RENDERS=runs/renders pcmusic bench --only transcribe   # scores both

For each NAME.wav it writes NAME.basic_pitch.csv (onset_s,offset_s,f0_hz), f0 from
the note's MIDI pitch plus the median of its pitch bends (basic-pitch reports bends in
thirds of a semitone), with basic-pitch's default thresholds.
"""
import sys
from pathlib import Path

import numpy as np
from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model, predict


def main(folder: str) -> None:
    model = Model(ICASSP_2022_MODEL_PATH)
    wavs = sorted(p for p in Path(folder).glob("*.wav"))
    for wav in wavs:
        _, _, events = predict(str(wav), model)
        rows = []
        for start, end, pitch, _, bends in events:
            bend = float(np.median(bends)) / 3.0 if bends else 0.0
            rows.append((start, end, 440.0 * 2.0 ** ((pitch + bend - 69) / 12.0)))
        rows.sort()
        out = wav.with_name(f"{wav.stem}.basic_pitch.csv")
        out.write_text("".join(f"{a:.4f},{b:.4f},{f:.3f}\n" for a, b, f in rows))
        print(f"{wav.name}: {len(rows)} notes", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: basic_pitch_notes.py RENDERS_DIR")
    main(sys.argv[1])
