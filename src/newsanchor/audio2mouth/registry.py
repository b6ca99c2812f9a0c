"""The audio → mouth models by name (paper Table 1), as a plain dict.

=========  ============================  ===========  =======================================
name       generator                     adversarial  paper
=========  ============================  ===========  =======================================
tcn-gan    TCNGenerator + TCNDiscrim.    yes          "Adversarial TCN (our)", §3.1
tcn        TCNGenerator                  no           "Non-Causal TCN" (L2 loss only)
lstm       LSTMGenerator, delay 20 rows  no           "Time-delayed LSTM" (Suwajanakorn)
bilstm     LSTMGenerator, bidirectional  no           "Bi-LSTM"
=========  ============================  ===========  =======================================

``tcn-gan`` and ``tcn`` build the same generator; only training differs (the trainer adds the
discriminator when ``spec.adversarial``). Inference needs nothing but the generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import NewsanchorError
from .baselines import LSTMConfig, LSTMGenerator
from .tcn import TCNConfig, TCNDiscriminator, TCNGenerator


@dataclass(frozen=True)
class ModelSpec:
    """How to build one named model.

    Attributes:
        config_class: frozen dataclass of its sizes.
        generator_class: ``generator_class(config)`` is the audio → mouth ``nn.Module``.
        adversarial: trained with a discriminator (and the GAN loss of eq. 3).
        default_config: the paper's sizes.
        discriminator_class: ``discriminator_class(config)`` for adversarial models, else None.
        description: one line for listings and reports.
    """

    config_class: type
    generator_class: type[nn.Module]
    adversarial: bool
    default_config: Any
    discriminator_class: type[nn.Module] | None = None
    description: str = ""


MODELS: dict[str, ModelSpec] = {
    "tcn-gan": ModelSpec(TCNConfig, TCNGenerator, True, TCNConfig(), TCNDiscriminator,
                         "non-causal TCN generator trained with a TCN discriminator (the paper's model)"),
    "tcn": ModelSpec(TCNConfig, TCNGenerator, False, TCNConfig(), None,
                     "non-causal TCN generator, L2 loss only"),
    "lstm": ModelSpec(LSTMConfig, LSTMGenerator, False, LSTMConfig(), None,
                      "time-delayed LSTM (200 ms look-ahead)"),
    "bilstm": ModelSpec(LSTMConfig, LSTMGenerator, False, LSTMConfig(bidirectional=True, delay_audio_frames=0), None,
                        "bidirectional LSTM"),
}


def model_spec(name: str) -> ModelSpec:
    """The spec of a named model; NewsanchorError naming the choices if there is none."""
    try:
        return MODELS[name]
    except KeyError:
        raise NewsanchorError(f"unknown mouth model {name!r}; choose one of {', '.join(MODELS)}") from None


def make_config(name: str, **overrides: Any) -> Any:
    """The default config of ``name`` with ``overrides`` applied (validated by the config)."""
    spec = model_spec(name)
    try:
        return dataclasses.replace(spec.default_config, **overrides)
    except (TypeError, ValueError) as err:
        raise NewsanchorError(f"mouth model {name!r}: {err}") from None


def build_model(name: str, **overrides: Any) -> tuple[nn.Module, Any]:
    """A freshly initialised generator of model ``name`` and its config.

    Example: ``build_model("tcn", filters=32, dilations=(1, 2))`` for a tiny test model.
    """
    config = make_config(name, **overrides)
    return model_spec(name).generator_class(config), config
