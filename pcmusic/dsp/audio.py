"""Audio files in and out: load, save, validate, resample.

soundfile and soxr are imported inside the functions, so the core package (and
everything jit-compiled) works where they are absent. Arrays are numpy float32;
a mono signal is `[n_samples]`, a multi-channel one `[n_samples, n_channels]`,
values nominally in [-1, 1], sample rates integer Hz.

Every problem a user can cause raises `AudioFileError` naming the file (or the
array's name), the offending value, and the fix. Writes are atomic: the data go
to a temporary file beside the target, which is renamed into place only when
complete, so a failure never leaves a partial file nor damages an existing one.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from pcmusic import files
from pcmusic.errors import AudioFileError

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
# extension -> (soundfile format, default subtype). FLOAT WAV keeps float32 exactly
# (and values beyond [-1, 1]); FLAC stores 16-bit PCM; OGG is lossy Vorbis.
FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
_SUPPORTED = ", ".join(FORMATS)


class AudioWarning(UserWarning):
    """An audio file or signal that is usable but not what it claims or should be."""


def check_sample_rate(sample_rate, *, name: str = "sample_rate") -> int:
    """`sample_rate` as an int, or AudioFileError if it is not an integer number
    of Hz within [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]."""
    value = sample_rate
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AudioFileError(f"{name}: sample rate {sample_rate!r} is not a number; give it in Hz, "
                             "e.g. 16000")
    if not np.isfinite(value):
        raise AudioFileError(f"{name}: sample rate {sample_rate!r} is not a finite number of Hz")
    if not float(value).is_integer():
        raise AudioFileError(f"{name}: sample rate {sample_rate!r} Hz is not an integer; "
                             f"use a whole number of Hz, e.g. {round(float(value))}")
    if not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise AudioFileError(f"{name}: sample rate {sample_rate!r} Hz is outside "
                             f"[{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}] Hz; common rates are "
                             "16000, 44100 and 48000")
    return int(value)


def validate(audio, sample_rate, *, name: str = "audio", allow_channels: bool = False) -> np.ndarray:
    """Check a user's signal and return it as float32 numpy.

    audio: float `[n_samples]` (or `[n_samples, n_channels]` with `allow_channels`)
      in [-1, 1]; jax arrays are accepted. Errors for empty arrays, wrong rank,
      non-float dtypes, NaN/Inf (with how many and where) and bad sample rates;
      a warning for samples beyond [-1, 1].
    """
    check_sample_rate(sample_rate, name=name)
    x = np.asarray(audio)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) \
            or x.dtype == np.bool_:
        raise AudioFileError(f"{name}: dtype {x.dtype} is not real audio; pass float samples in [-1, 1]")
    if np.issubdtype(x.dtype, np.integer):
        scale = 2.0 ** (8 * x.dtype.itemsize - 1)
        raise AudioFileError(f"{name}: integer samples ({x.dtype}) have no agreed scale; "
                             f"convert to float in [-1, 1], e.g. audio / {scale:g}")
    wanted = "[n_samples] or [n_samples, n_channels]" if allow_channels else "[n_samples] (mono)"
    if x.ndim not in ((1, 2) if allow_channels else (1,)):
        raise AudioFileError(f"{name}: shape {x.shape} is not {wanted}"
                             + ("; mix down with audio.mean(axis=-1)" if x.ndim == 2 else ""))
    if x.shape[0] == 0 or x.size == 0:
        raise AudioFileError(f"{name}: the audio is empty (shape {x.shape}); pass at least one sample")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise AudioFileError(
            f"{name}: {int(np.isnan(x).sum())} NaN and {int(np.isinf(x).sum())} Inf samples of "
            f"{x.shape[0]}, the first at sample {first} ({first / sample_rate:.4f} s); "
            "fix the signal that produced them (e.g. np.nan_to_num) before using it")
    peak = float(np.abs(x).max())
    if peak > 1.0:
        n_over = int((np.abs(x) > 1.0).sum())
        warnings.warn(f"{name}: {n_over} samples beyond [-1, 1] (peak {peak:.4g}); they clip "
                      "in integer formats: scale the signal, e.g. audio / np.abs(audio).max()",
                      AudioWarning, stacklevel=2)
    return x


def resample(audio, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample `[n_samples]` or `[n_samples, n_channels]` float audio from
    `orig_sr` to `target_sr` Hz with soxr's very-high-quality filter (linear phase,
    passband to ~0.91 of the lower Nyquist). Returns float32, length about
    `n_samples * target_sr / orig_sr`."""
    import soxr

    orig_sr = check_sample_rate(orig_sr, name="resample orig_sr")
    target_sr = check_sample_rate(target_sr, name="resample target_sr")
    x = np.asarray(audio, np.float32)
    if orig_sr == target_sr:
        return x.copy()
    return np.asarray(soxr.resample(x, orig_sr, target_sr, quality="VHQ"), np.float32)


def load(path, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG, or whatever libsndfile decodes) as
    float32 mono `[n_samples]` in [-1, 1] (channels averaged), resampled to
    `sample_rate` Hz if given. Returns `(audio, sample_rate)`."""
    import soundfile as sf

    path = Path(path)
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate, name=f"load({path}) sample_rate")
    if not path.exists():
        raise AudioFileError(f"{path}: no such file; check the path (cwd is {Path.cwd()})")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a directory; give an audio file ({_SUPPORTED})")
    try:
        data, file_sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioFileError(f"{path}: not a readable audio file ({err}); expected {_SUPPORTED} "
                             "audio: convert it, e.g. `sox input output.wav`") from None
    except OSError as err:
        raise AudioFileError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
    file_sr = check_sample_rate(file_sr, name=f"{path} (header)")
    declared = wav_declared_frames(path)
    if declared is not None and declared > data.shape[0]:
        warnings.warn(f"{path}: truncated: its header declares {declared} frames "
                      f"({declared / file_sr:.3f} s) but the file holds {data.shape[0]} "
                      f"({data.shape[0] / file_sr:.3f} s); reading what is there", AudioWarning, stacklevel=2)
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: contains no samples (zero-length audio); record or export it again")
    audio = validate(data.mean(axis=1), file_sr, name=str(path))
    if sample_rate is not None and sample_rate != file_sr:
        audio = resample(audio, file_sr, sample_rate)
    return audio, sample_rate or file_sr


def wav_declared_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE file's header declares for its data chunk, or None (not a WAV,
    or a streamed WAV whose size field is unset). Read from the chunk headers alone."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if name == b"fmt ":
                    fmt = f.read(size)
                    block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else None
                    f.seek(size % 2, 1)
                elif name == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + size % 2, 1)
    except OSError:
        return None


def _writable_dir(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise AudioFileError(f"{path}: directory {parent} does not exist; create it first "
                             f"(mkdir -p {parent}) or choose another output path")
    if not parent.is_dir():
        raise AudioFileError(f"{path}: {parent} is a file, not a directory; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AudioFileError(f"{path}: directory {parent} is not writable (permission denied); "
                             "choose a writable output directory")


def _link_exclusive(tmp: str, path: Path) -> bool:
    """Give the finished `tmp` the name `path` unless that name exists (atomic:
    a file appearing meanwhile is never clobbered). False where the filesystem
    has no hard links and the caller must rename instead."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(path) from None
        return False
    os.unlink(tmp)
    return True


def save(path, audio, sample_rate: int, *, overwrite: bool = False, subtype: str | None = None) -> Path:
    """Write float audio `[n_samples]` or `[n_samples, n_channels]` at
    `sample_rate` Hz; the format follows the extension (.wav float32 by default,
    .flac 16-bit PCM, .ogg Vorbis); `subtype` overrides it (e.g. "PCM_16",
    "PCM_24" for WAV). Samples beyond [-1, 1] warn and are clipped in every
    format but float WAV. An existing file is kept unless `overwrite=True`."""
    import soundfile as sf

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise AudioFileError(f"{path}: unsupported extension {path.suffix or '(none)'!r}; "
                             f"use one of {_SUPPORTED}")
    fmt, default_subtype = FORMATS[ext]
    subtype = (subtype or default_subtype).upper()
    if not sf.check_format(fmt, subtype):
        raise AudioFileError(f"{path}: subtype {subtype!r} is not available for {fmt}; "
                             f"choose one of {sorted(sf.available_subtypes(fmt))}")
    x = validate(audio, sample_rate, name=str(path), allow_channels=True)
    if subtype not in ("FLOAT", "DOUBLE"):
        x = np.clip(x, -1.0, 1.0)  # integer and lossy formats wrap or distort beyond full scale
    if path.exists() and not overwrite:
        raise AudioFileError(f"{path}: exists and was left untouched; pass overwrite=True "
                             "or choose another name")
    _writable_dir(path)
    try:
        fd, tmp = files.mkstemp_beside(path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as err:
        raise AudioFileError(f"{path}: cannot create a file in {path.parent} ({err.strerror or err}); "
                             "choose a writable output directory") from None
    try:
        with os.fdopen(fd, "wb") as f:
            sf.write(f, x, int(sample_rate), format=fmt, subtype=subtype)
        if overwrite or not _link_exclusive(tmp, path):
            os.replace(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        raise AudioFileError(f"{path}: appeared while writing and was left untouched; "
                             "pass overwrite=True or choose another name") from None
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise AudioFileError(f"{path}: writing failed ({err.strerror or err}); nothing was "
                                 "written: check free space and permissions") from None
        raise
    return path
