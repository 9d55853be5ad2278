"""Audio folders: a user's WAV/FLAC/OGG files as an endless, shuffled, resumable stream of segments.

`AudioFolder(root, sample_rate=..., segment_seconds=..., key=...)` finds audio
files recursively (sorted paths, so the same folder gives the same corpus),
loads each once with `pcmusic.dsp.audio.load` (mono, resampled), and cuts it into
segments of `round(segment_seconds * sample_rate)` samples from its start. The
tail policy: `tail="pad"` keeps a last partial segment, zero-padded, when it
holds at least half a segment (`n_valid` says how much is real); `tail="drop"`
drops it. A file too short for one segment under the policy is skipped.

Files that cannot be used (not audio, empty, NaN/Inf samples, too short) are
skipped at construction, listed in `skipped` and summarised in one warning;
a folder with no usable audio raises PcmusicError. Nothing is read from disk
mid-epoch unless the decoded corpus exceeds `cache_bytes`.

The stream is the concatenation of epochs; epoch e visits every segment once in
the order `permutation(fold_in(key, e))`. A batch is the next `batch_size`
positions of the stream (crossing epoch boundaries), so the data position
`(epoch, index)` is all a checkpoint needs to resume exactly.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterator, Literal, NamedTuple

import jax
import numpy as np

from pcmusic.dsp import audio as audio_io
from pcmusic.errors import AudioFileError, PcmusicError

EXTENSIONS = (".wav", ".flac", ".ogg")


@dataclasses.dataclass(frozen=True)
class DataPosition:
    """Where a stream stands: the next segment is `index` (0-based) of epoch `epoch`.

    `fingerprint` identifies the corpus (files, lengths, segmenting); restoring a
    position into a folder whose fingerprint differs warns that resumption is not exact.
    """
    epoch: int = 0
    index: int = 0
    fingerprint: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DataPosition":
        return cls(int(values["epoch"]), int(values["index"]), str(values.get("fingerprint", "")))


class SkippedFile(NamedTuple):
    """A file left out of the corpus: `reason` is a category, `detail` the full explanation."""
    path: Path
    reason: str
    detail: str


class SegmentBatch(NamedTuple):
    """audio: float32 `[batch_size, segment_samples]` in [-1, 1], zero-padded past `n_valid`;
    n_valid: int32 `[batch_size]` real samples per row; file_ids: int32 `[batch_size]` indices
    into `AudioFolder.files`; starts: int64 `[batch_size]` first sample of each row in its file."""
    audio: np.ndarray
    n_valid: np.ndarray
    file_ids: np.ndarray
    starts: np.ndarray


def _reason(err: AudioFileError) -> str:
    """A category for the summary; the error text keeps the exact cause."""
    text = str(err)
    if "no samples" in text or "empty" in text:
        return "empty"
    if "NaN" in text or "Inf" in text:
        return "non-finite samples"
    return "unreadable"


class AudioFolder:
    """Segments of every usable audio file under `root` (see the module docstring).

    Args:
      root: folder searched recursively for *.wav, *.flac, *.ogg (any case).
      sample_rate: Hz every file is resampled to. segment_seconds: segment length.
      key: PRNG key of the shuffles (epoch e uses fold_in(key, e)).
      batch_size: rows per `next_batch`. tail: "pad" or "drop" (module docstring).
      cache_bytes: decoded audio kept in memory; files beyond it are re-read when used.
    """

    def __init__(self, root, *, sample_rate: int, segment_seconds: float, key: jax.Array, batch_size: int = 8,
                 tail: Literal["pad", "drop"] = "pad", cache_bytes: int = 1 << 30):
        self.root = Path(root)
        if not self.root.is_dir():
            raise PcmusicError(f"audio folder {self.root}: not a directory; give a folder of "
                               f"{'/'.join(EXTENSIONS)} files")
        if tail not in ("pad", "drop"):
            raise PcmusicError(f"tail={tail!r}: use 'pad' (zero-pad a last partial segment) or 'drop'")
        if batch_size < 1 or not segment_seconds > 0:
            raise PcmusicError(f"need batch_size >= 1 and segment_seconds > 0, got {batch_size}, {segment_seconds}")
        self.sample_rate = audio_io.check_sample_rate(sample_rate)
        self.segment_samples = max(1, round(segment_seconds * self.sample_rate))
        self.batch_size, self.tail, self._key = batch_size, tail, key
        self.files: list[Path] = []
        self.skipped: list[SkippedFile] = []
        self._cache: dict[int, np.ndarray] = {}
        self._orders: dict[int, np.ndarray] = {}
        self._scan(cache_bytes)
        self.position = DataPosition(0, 0, self.fingerprint)

    # ------------------------------------------------------------ corpus

    def _scan(self, cache_bytes: int) -> None:
        candidates = sorted(p for p in self.root.rglob("*") if p.is_file())
        audio_paths = [p for p in candidates if p.suffix.lower() in EXTENSIONS]
        min_samples = self.segment_samples if self.tail == "drop" else (self.segment_samples + 1) // 2
        lengths, file_ids, starts, cached = [], [], [], 0
        for path in audio_paths:
            try:
                signal, _ = audio_io.load(path, sample_rate=self.sample_rate)
            except AudioFileError as err:
                self.skipped.append(SkippedFile(path, _reason(err), str(err)))
                continue
            if signal.shape[0] < min_samples:
                self.skipped.append(SkippedFile(path, "too short", (
                    f"{path}: {signal.shape[0] / self.sample_rate:.3f} s, less than the "
                    f"{min_samples / self.sample_rate:.3f} s one segment needs (tail={self.tail!r})")))
                continue
            file_id = len(self.files)
            self.files.append(path)
            lengths.append(signal.shape[0])
            n_full, rest = divmod(signal.shape[0], self.segment_samples)
            n_segments = n_full + (self.tail == "pad" and rest >= min_samples)
            file_ids += [file_id] * n_segments
            starts += [k * self.segment_samples for k in range(n_segments)]
            if cached + signal.nbytes <= cache_bytes:
                self._cache[file_id] = signal
                cached += signal.nbytes
        if not self.files:
            others = Counter(p.suffix.lower() or "(no extension)" for p in candidates
                             if p.suffix.lower() not in EXTENSIONS)
            reasons = Counter(s.reason for s in self.skipped)
            raise PcmusicError(
                f"no usable audio in {self.root}: {len(audio_paths)} file(s) with audio extensions "
                f"({', '.join(f'{n} {r}' for r, n in sorted(reasons.items())) or 'none'}), "
                f"{sum(others.values())} other file(s) ({', '.join(sorted(others)) or 'none'}); "
                f"add {'/'.join(EXTENSIONS)} files of at least {min_samples / self.sample_rate:.3f} s"
                + (f"; first problem: {self.skipped[0].detail}" if self.skipped else ""))
        self._lengths = np.asarray(lengths, np.int64)
        self._file_ids = np.asarray(file_ids, np.int32)
        self._starts = np.asarray(starts, np.int64)
        if self.skipped:
            warnings.warn(self.skipped_summary(), stacklevel=3)

    def skipped_summary(self) -> str:
        """Counts per reason and every skipped file with its cause."""
        counts = Counter(s.reason for s in self.skipped)
        lines = [f"{self.root}: skipped {len(self.skipped)} of {len(self.skipped) + len(self.files)} audio "
                 f"file(s) ({', '.join(f'{n} {r}' for r, n in sorted(counts.items()))}):"]
        lines += [f"  {s.path.relative_to(self.root)}: {s.reason}: {s.detail}" for s in self.skipped]
        return "\n".join(lines)

    @property
    def n_segments(self) -> int:
        return int(self._file_ids.shape[0])

    @functools.cached_property
    def fingerprint(self) -> str:
        text = "|".join(f"{p.relative_to(self.root)}:{n}" for p, n in zip(self.files, self._lengths))
        text += f"|sr={self.sample_rate}|seg={self.segment_samples}|tail={self.tail}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _signal(self, file_id: int) -> np.ndarray:
        if file_id in self._cache:
            return self._cache[file_id]
        try:
            return audio_io.load(self.files[file_id], sample_rate=self.sample_rate)[0]
        except AudioFileError as err:  # changed on disk since the scan: silence, never a crash mid-epoch
            warnings.warn(f"{err}; its segments are silent from now on", stacklevel=3)
            self._cache[file_id] = np.zeros(self._lengths[file_id], np.float32)
            return self._cache[file_id]

    def segment(self, segment_id: int) -> tuple[np.ndarray, int]:
        """Segment `segment_id` in file order: float32 `[segment_samples]` and its real length."""
        file_id, start = int(self._file_ids[segment_id]), int(self._starts[segment_id])
        piece = self._signal(file_id)[start:start + self.segment_samples]
        out = np.zeros(self.segment_samples, np.float32)
        out[:piece.shape[0]] = piece
        return out, piece.shape[0]

    # ------------------------------------------------------------ order and position

    def epoch_order(self, epoch: int) -> np.ndarray:
        """int `[n_segments]`: the segment ids of `epoch` in visiting order."""
        if epoch not in self._orders:
            if len(self._orders) >= 2:  # a batch spans at most two epochs
                self._orders.pop(min(self._orders))
            with jax.default_device(jax.local_devices(backend="cpu")[0]):
                key = jax.random.fold_in(self._key, epoch)
                self._orders[epoch] = np.asarray(jax.random.permutation(key, self.n_segments))
        return self._orders[epoch]

    def batch_at(self, position: DataPosition) -> SegmentBatch:
        """The batch starting at `position` (does not move the stream)."""
        flat = position.epoch * self.n_segments + position.index + np.arange(self.batch_size)
        ids = np.asarray([self.epoch_order(int(q // self.n_segments))[q % self.n_segments] for q in flat])
        rows = [self.segment(int(i)) for i in ids]
        return SegmentBatch(audio=np.stack([r[0] for r in rows]),
                            n_valid=np.asarray([r[1] for r in rows], np.int32),
                            file_ids=self._file_ids[ids], starts=self._starts[ids])

    def next_batch(self) -> SegmentBatch:
        """The batch at the current position; the position moves on by `batch_size`."""
        batch = self.batch_at(self.position)
        flat = self.position.epoch * self.n_segments + self.position.index + self.batch_size
        self.position = DataPosition(flat // self.n_segments, flat % self.n_segments, self.fingerprint)
        return batch

    def seek(self, position: DataPosition | dict) -> None:
        """Continue from a saved position (a DataPosition or its `to_dict()`)."""
        if isinstance(position, dict):
            position = DataPosition.from_dict(position)
        if position.fingerprint and position.fingerprint != self.fingerprint:
            warnings.warn(f"{self.root}: the folder changed since this data position was saved "
                          "(files or lengths differ); resuming at the same index, but not exactly", stacklevel=2)
        flat = position.epoch * self.n_segments + position.index
        self.position = DataPosition(flat // self.n_segments, flat % self.n_segments, self.fingerprint)

    def __iter__(self) -> Iterator[SegmentBatch]:
        while True:
            yield self.next_batch()
