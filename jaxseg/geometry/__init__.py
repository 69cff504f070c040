"""Geometry helpers: surface normals of meshes and point clouds."""
