"""geotarget's benchmark harness: ``python -m benchmarks`` (or ``make bench``) writes ``RESULTS.md``."""
