"""Pipeline stage 2, audio → mouth (paper §3.1): normalised MFCC [4T, 13] → PCA mouth [T, 10].

- ``tcn``: TCN block, TCN generator and discriminator; ``baselines``: time-delayed LSTM, BiLSTM;
- ``registry``: the models by name (``MODELS``, ``build_model``);
- ``checkpoint``: safetensors + JSON save/load;
- ``infer``: overlapping windows / single pass for any length (``predict_mouth``,
  ``mouth_from_audio``); ``silence``: VAD and mouth closure in pauses; ``stream``: ``MouthStreamer``.
"""

from .checkpoint import load_mouth_model, save_mouth_model
from .infer import (
    mouth_from_audio,
    predict_mouth,
    predict_mouth_single_pass,
    predict_mouth_windowed,
    silence_mfcc_row,
)
from .registry import MODELS, ModelSpec, build_model
from .silence import (
    VadConfig,
    close_mouth_in_silence,
    closed_mouth_pose,
    speech_activity,
)
from .stream import MouthStreamer

__all__ = [
    "MODELS", "ModelSpec", "MouthStreamer", "VadConfig", "build_model", "close_mouth_in_silence", "closed_mouth_pose",
    "load_mouth_model", "mouth_from_audio", "predict_mouth", "predict_mouth_single_pass", "predict_mouth_windowed",
    "save_mouth_model", "silence_mfcc_row", "speech_activity",
]
