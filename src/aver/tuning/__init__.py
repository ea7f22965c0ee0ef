"""Ray Tune hyperparameter search that reuses the training loop (no second loop)."""
