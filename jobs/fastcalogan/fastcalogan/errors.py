"""The payload's exceptions; ``cli`` turns them into the exit codes of the payload contract."""

from __future__ import annotations

EXIT_CONFIG = 2
EXIT_REQUEUE = 85
EXIT_NO_GPU = 86


class PayloadError(Exception):
    """Base of the payload's errors; ``exit_code`` is what the process returns."""

    exit_code = 1


class ConfigError(PayloadError):
    """Bad spec or parameters: never retried."""

    exit_code = EXIT_CONFIG


class DataError(ConfigError):
    """Missing or malformed input data (a configuration problem: retrying cannot help)."""


class NoGpuError(PayloadError):
    """GPUs were requested but TensorFlow sees none."""

    exit_code = EXIT_NO_GPU


class Checkpointed(PayloadError):
    """A signal asked us to stop: the checkpoint is written, please requeue."""

    exit_code = EXIT_REQUEUE
