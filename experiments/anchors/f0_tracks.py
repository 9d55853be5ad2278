"""Frame-wise f0 by torchcrepe and PESTO on every render of a folder, as pitch-tracking anchors.

Runs in the trackers' own venv (never a pcmusic dependency); both ship their weights in
their wheels, so nothing is downloaded at run time:

    python3 -m venv anchor-venv && anchor-venv/bin/pip install torch torchcrepe pesto-pitch soundfile numpy
    anchor-venv/bin/python experiments/anchors/f0_tracks.py runs/renders [--tools torchcrepe,pesto] [--force]

For each NAME.wav (mono, any rate) it writes beside it NAME.torchcrepe.f0.csv and
NAME.pesto.f0.csv: one row per 10 ms frame, `time_s,f0_hz,confidence,voiced`, no header:
the tool's pitch in every frame (its guess where unvoiced, so raw pitch accuracy does not
depend on the voicing rule) and its voicing decision (1 voiced, 0 not). Existing outputs
are kept unless --force. At the end it prints, per tool, files, audio seconds, wall seconds and
the real-time factor (audio s / wall s), the warm one leaving out each tool's first file
(model load, kernel set-up).

Voicing rules:
- torchcrepe: model 'full', audio resampled to 16 kHz by torchcrepe's own helper
  (resampy), hop 160 samples (10 ms), default Viterbi decoder, fmin/fmax (default 30 and
  2500 Hz) clipped to its range (31.7-2006 Hz); its pitch dither is seeded (numpy seed 0
  per file) so reruns match. Then its README's recipe:
  periodicity median-filtered over 3 frames, voiced where that periodicity >= 0.21
  (threshold.At(.21)), voiced pitch mean-filtered over 3 frames. confidence = that
  filtered periodicity. Its optional threshold.Silence(-60 dB) is not applied: its
  loudness scale is absolute, and on renders peaking near -18 dBFS it unvoices notes.
- PESTO: default model mir-1k_g7 at the file's own rate, 10 ms step, default "alwa"
  reduction; voiced where its confidence >= 0.5 (PESTO documents no threshold).
  confidence = PESTO's confidence.
Times are frame centres (frame i at i * 10 ms) for both.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

HOP_S = 0.010
CREPE_THRESHOLD = 0.21
CREPE_WIN = 3
PESTO_THRESHOLD = 0.5


def crepe_track(audio: np.ndarray, sr: int, fmin: float, fmax: float):
    import torchcrepe

    x = torch.from_numpy(audio)[None]
    if sr != torchcrepe.SAMPLE_RATE:
        x = torchcrepe.resample(x, sr)
        sr = torchcrepe.SAMPLE_RATE
    # its range: bin 0 (1997.38 cents above 10 Hz, plus a cent so that floor() cannot give
    # bin -1) up to MAX_FMAX. Not convert.bins_to_cents(0): that dithers, and an fmin that
    # lands below bin 0 makes torchcrepe mask every bin (all frames unvoiced).
    lo = 10.0 * 2.0 ** ((1997.3794084376191 + 1.0) / 1200.0)
    hi = torchcrepe.MAX_FMAX
    hop = int(round(sr * HOP_S))
    np.random.seed(0)  # torchcrepe dithers decoded pitch by +-20 cents with numpy's global RNG
    pitch, per = torchcrepe.predict(x, sr, hop, max(fmin, lo), min(fmax, hi), "full",
                                    return_periodicity=True, batch_size=512, device="cpu")
    per = torchcrepe.filter.median(per, CREPE_WIN)
    guess = torchcrepe.filter.mean(pitch.clone(), CREPE_WIN)[0].numpy()
    pitch = torchcrepe.threshold.At(CREPE_THRESHOLD)(pitch, per)
    pitch = torchcrepe.filter.mean(pitch, CREPE_WIN)
    voiced = np.isfinite(pitch[0].numpy())
    f0 = np.where(voiced, np.nan_to_num(pitch[0].numpy(), nan=0.0), np.nan_to_num(guess, nan=0.0))
    conf = per[0].numpy()
    return np.arange(len(f0)) * HOP_S, f0, conf, voiced


def pesto_track(audio: np.ndarray, sr: int, _fmin: float, _fmax: float):
    import pesto

    _, f0, conf, _ = pesto.predict(torch.from_numpy(audio), sr, step_size=HOP_S * 1000)
    f0, conf = f0.numpy(), conf.numpy()
    return np.arange(len(f0)) * HOP_S, f0, conf, conf >= PESTO_THRESHOLD


TOOLS = {"torchcrepe": crepe_track, "pesto": pesto_track}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("renders", help="folder of NAME.wav renders")
    ap.add_argument("--tools", default="torchcrepe,pesto", help="comma list of torchcrepe,pesto")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs")
    ap.add_argument("--fmin", type=float, default=30.0, help="torchcrepe fmin (Hz)")
    ap.add_argument("--fmax", type=float, default=2500.0, help="torchcrepe fmax (Hz)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}; choose from {','.join(TOOLS)}")
    torch.set_num_threads(args.threads)

    wavs = sorted(Path(args.renders).glob("*.wav"))
    stats = {t: [] for t in tools}  # (audio_s, wall_s) per file done
    for wav in wavs:
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(audio.mean(axis=1))
        for tool in tools:
            out = wav.with_name(f"{wav.stem}.{tool}.f0.csv")
            if out.exists() and not args.force:
                continue
            t0 = time.perf_counter()
            times, f0, conf, voiced = TOOLS[tool](audio, sr, args.fmin, args.fmax)
            wall = time.perf_counter() - t0
            stats[tool].append((len(audio) / sr, wall))
            out.write_text("".join(f"{t:.3f},{f:.3f},{c:.4f},{int(v)}\n"
                                   for t, f, c, v in zip(times, f0, conf, voiced)))
            print(f"{wav.name} {tool}: {len(f0)} frames, {int(voiced.sum())} voiced, "
                  f"{wall:.2f} s", flush=True)

    print(f"\n{'tool':<11}{'files':>6}{'audio_s':>9}{'wall_s':>9}{'RTF':>8}{'warm_RTF':>10}")
    for tool, rows in stats.items():
        if not rows:
            print(f"{tool:<11}{0:>6}  (all outputs existed; --force to redo)")
            continue
        a = np.array(rows)
        rtf = a[:, 0].sum() / a[:, 1].sum()
        warm = a[1:, 0].sum() / a[1:, 1].sum() if len(a) > 1 else float("nan")
        print(f"{tool:<11}{len(a):>6}{a[:, 0].sum():>9.1f}{a[:, 1].sum():>9.1f}{rtf:>8.2f}{warm:>10.2f}")
    print("RTF = audio s / wall s (higher is faster); warm_RTF leaves out each tool's first file.")


if __name__ == "__main__":
    main()
