"""Evaluation: test-split metrics, reports for DVC, plots, MLflow logging."""
