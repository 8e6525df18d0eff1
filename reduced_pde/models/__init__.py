"""Model plug-ins and their registry (see :mod:`reduced_pde.models.base`).

A model registers itself with :func:`register` at the end of its module; the list of built-in
modules below is the only place the package names them.  ``data.model`` selects one by name.
"""

from __future__ import annotations

import importlib

from reduced_pde.models.base import Model

__all__ = ["register", "get_model", "model_names", "Model"]

#: built-in model modules (one line per model: the registry entry)
BUILTIN = (
    "reduced_pde.models.isotropic_mixture",
    "reduced_pde.models.single_index",
    "reduced_pde.models.multi_index",
    "reduced_pde.models.anisotropic_mixture",
    "reduced_pde.models.circle_sphere",
)

_REGISTRY: dict[str, Model] = {}
_LOADED = False


def register(model: type[Model]) -> type[Model]:
    """Class decorator: add ``model`` (a :class:`Model` subclass) to the registry under ``model.name``."""
    if model.name in _REGISTRY and type(_REGISTRY[model.name]) is not model:
        raise ValueError(f"two models are registered as {model.name!r}")
    _REGISTRY[model.name] = model()
    return model


def _load() -> None:
    global _LOADED
    if not _LOADED:
        for module in BUILTIN:
            importlib.import_module(module)
        _LOADED = True


def model_names() -> tuple[str, ...]:
    _load()
    return tuple(sorted(_REGISTRY))


def get_model(name: object) -> Model:
    """The registered model called ``name`` (ValueError naming ``data.model`` otherwise)."""
    _load()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"data.model = {name!r} is not known; allowed: {', '.join(map(repr, model_names()))}")
    return _REGISTRY[name]
