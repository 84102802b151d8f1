"""Palette: image-to-image diffusion models (Saharia et al., SIGGRAPH 2022), reproduced."""

__version__ = "0.1.0"
