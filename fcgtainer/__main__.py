"""``python -m fcgtainer``: the same as the ``fcgtainer`` command."""

from fcgtainer.cli import main

main()
