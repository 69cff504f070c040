"""Sparse voxel convolution in pure JAX.

  host_maps.py   numpy kernel maps of one scene (pair lists, parents, interpolation corners),
                 built in the input workers;
  pairs.py       pair-list convs over those maps (the default engine);
  kernel_map.py  the on-device map builder (int32 keys, sort + searchsorted) and
  conv.py        dense-offset convs over its maps (the 'dense' engine and the reference);
  geometry.py    the per-batch geometry both engines share, and trilinear upsampling;
  norm.py        BatchNorm over valid voxels.
"""
