"""CLI commands for images: ``build``, ``images`` and ``shell`` (registered on ``app``)."""

from __future__ import annotations
