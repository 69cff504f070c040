"""jaxseg: label-efficient 3D semantic segmentation of indoor point clouds in JAX."""

__version__ = "0.1.0"
