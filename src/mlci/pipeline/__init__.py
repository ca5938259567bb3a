"""The DVC stages, one module each: ingest, validate, split, train, evaluate.

Each stage is a function that `mlci <stage>` calls; dvc.yaml declares what it reads and writes.
"""
