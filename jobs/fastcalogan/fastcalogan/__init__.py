"""FastCaloGAN training payload for fcgtainer: data, WGAN-GP training, selection, export.

Run as ``python3 -m fastcalogan train --spec SPEC`` (see ``python3 -m fastcalogan -h``).
Only ``model``, ``step``, ``train`` and ``export`` import TensorFlow.
"""

__version__ = "0.1.0"
