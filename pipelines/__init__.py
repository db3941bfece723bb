"""The edge: one thin module per DVC stage, the `gridscore` CLI, params, file I/O, MLflow."""
