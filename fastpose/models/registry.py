"""Model registry: ``@register_model("pg2")`` on a :class:`PoseTransferModel` subclass."""

from __future__ import annotations

import importlib
from typing import Callable

MODELS: dict[str, type] = {}
# Modules that register the built-in models; imported on first lookup so that importing
# fastpose.models stays cheap.
_BUILTIN = ("fastpose.models.pg2", "fastpose.models.patn", "fastpose.models.pot_gan",
            "fastpose.models.spgnet")


def register_model(name: str, config_class: type) -> Callable[[type], type]:
    """Class decorator registering a model and its dataclass config under ``name``."""

    def deco(cls: type) -> type:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model {name!r} is already registered by {MODELS[name].__qualname__}")
        cls.name = name
        cls.config_class = config_class
        MODELS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN:
        importlib.import_module(mod)


def list_models() -> list[str]:
    _load_builtins()
    return sorted(MODELS)


def get_model(name: str) -> type:
    """The model class registered as ``name``; an unknown name raises listing the known ones."""
    _load_builtins()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))}")
    return MODELS[name]
