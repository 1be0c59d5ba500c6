"""fcgtainer: run ML fast-simulation jobs in a CERN-like Apptainer environment anywhere."""

__version__ = "0.1.0"
