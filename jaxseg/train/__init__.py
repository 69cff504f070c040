"""Training infrastructure: train state, data-parallel steps, optimizers and checkpoints."""
