"""Benchmarks behind `vlmtune bench`, each reported as ratios against baselines run alongside.

A benchmark module exposes `run(args) -> dict` (JSON-ready) and `report(result, as_json) -> str`;
`vlmtune.cli.bench` declares the options and dispatches. Importing the package imports no
benchmark, and `vlmtune.bench.data` needs neither Ray nor a GPU.
"""
