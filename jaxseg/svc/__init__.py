"""Super-voxel clustering (PointDC Stage 2, Eq. 8-12): super-voxel features, K-means over the
training set, pooled and Sinkhorn pseudo-labels."""
