"""Readers and writers for real point-cloud exports (ScanNet, S3DIS, custom clouds)."""
