"""One-off harnesses behind figures in docs/ (benchmarks/README.md lists each)."""
