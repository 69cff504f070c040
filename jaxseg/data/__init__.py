"""Scene records, dataset builders and input pipelines."""
