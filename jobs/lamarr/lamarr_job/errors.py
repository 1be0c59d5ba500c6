"""Exceptions of the Lamarr payload, mapped to the contract's exit codes."""

EXIT_CONFIG = 2
EXIT_FAILURE = 1


class LamarrError(Exception):
    """Base class: a payload failure (exit code 1, retried by the scheduler)."""

    exit_code = EXIT_FAILURE


class ConfigError(LamarrError):
    """A bad spec or parameter (exit code 2, never retried)."""

    exit_code = EXIT_CONFIG


class ModelsError(ConfigError):
    """The models directory is missing, incomplete or corrupted (exit code 2)."""


class InputError(ConfigError):
    """An input file (HepMC events) is missing, truncated or unusable (exit code 2)."""
