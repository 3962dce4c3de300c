"""Generators, discriminators and feature networks; the model registry.

``get_model(name)`` returns a registered :class:`PoseTransferModel` subclass; ``list_models()`` the
names. Built-in models: ``pot_gan`` (the default), ``pg2``, ``patn``, ``spgnet``.
"""

from fastpose.models.base import BuildContext, PoseTransferModel, Stage, unwrap
from fastpose.models.registry import get_model, list_models, register_model

__all__ = ["BuildContext", "PoseTransferModel", "Stage", "get_model", "list_models",
           "register_model", "unwrap"]
