"""Super-voxels: mesh graph segmentation and VCCS + region growing on point clouds."""
