"""User-facing errors.

Every error a researcher can cause with bad input derives from `PcmusicError`;
its message names the file or value at fault and the fix. The CLI prints such
messages without a traceback; anything else is a bug and keeps its traceback.
"""


class PcmusicError(Exception):
    """Base class: bad input or state that the user can fix."""


class AudioFileError(PcmusicError):
    """An audio file that cannot be read or written as asked."""


class ConfigError(PcmusicError):
    """A config file or override with unknown keys, wrong types or bad values."""


class CheckpointError(PcmusicError):
    """A checkpoint that is missing, incomplete, corrupt or for another config."""


class InferenceDivergence(PcmusicError):
    """Inference produced NaN/Inf or an exploding energy (names step and level)."""
