"""Scheduler backends, one module each, imported only when a site needs it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fcgtainer.backends.base import Backend
    from fcgtainer.config.site import Site

_MODULES = {
    "local": ("fcgtainer.backends.local", "LocalBackend"),
    "slurm": ("fcgtainer.backends.slurm", "SlurmBackend"),
    "htcondor": ("fcgtainer.backends.htcondor", "HTCondorBackend"),
}


def get_backend(site: Site) -> Backend:
    """The backend for ``site.scheduler``, imported lazily (SLURM never imports htcondor)."""
    module_name, class_name = _MODULES[site.scheduler]
    cls = getattr(importlib.import_module(module_name), class_name)
    backend: Backend = cls(site)
    return backend
