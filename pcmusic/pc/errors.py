"""The PC engine's input error (the lead may move it into `pcmusic.errors`)."""
from pcmusic.errors import PcmusicError


class HierarchySpecError(PcmusicError):
    """A hierarchy spec, params, latents, clamp or option that do not fit together."""
