"""The offline demo: a synthetic actor that needs no recordings (see :mod:`.actor`)."""

from .actor import PARAM_NAMES, SyntheticActor, write_actor_video
from .motion import VISEMES, idle_motion, mouth_trajectory, visemes_for

__all__ = ["PARAM_NAMES", "VISEMES", "SyntheticActor", "idle_motion", "mouth_trajectory", "visemes_for",
           "write_actor_video"]
