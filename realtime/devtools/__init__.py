"""Development tooling, not part of the product: the benchmark, its micro-benchmarks, metrics
and the readers of the shared test data. The product never imports this package (only
``run.py bench`` does, lazily)."""
