"""Cross-Modal Distillation (PointDC stage 1): projection, per-point teacher features, targets."""
