"""MLflow tracking: store and experiment setup, parent/child runs, registry, the pyfunc model."""
