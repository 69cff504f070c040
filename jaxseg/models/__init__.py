"""Flax models: sparse voxel encoders, point encoders and 2D teachers, registered by name."""
