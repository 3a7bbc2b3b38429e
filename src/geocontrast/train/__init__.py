"""Training: batch augmentation, the loop, checkpoints."""
