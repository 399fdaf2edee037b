"""Operator tools: benchmarks, perf_analyzer runs, soak and fuzz clients, the local stack they start."""
