"""Accelerator ops: sparse voxel convolution, pooling, K-means, Sinkhorn, k-NN."""
