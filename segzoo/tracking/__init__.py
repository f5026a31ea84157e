"""MLflow: the client and run opener, run metadata (tags, descriptions, links), datasets and liveness
(docs/architecture.md). No Ignite here: the tracker handler is :mod:`segzoo.engine.mlflow_tracker`."""
