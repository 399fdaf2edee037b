#!/usr/bin/env python3
"""Benchmark both StreamDiffusion models with Triton's perf_analyzer over gRPC, with real JPEG frames.

    .venv/bin/python scripts/perf_analyzer.py [--config FILE] [--url HOST:PORT] [--concurrency 1,2]
        [--request-count N | --measurement-interval MS] [--sequence-length N] [--models realtime,canvas]

The work is done by sdtools.perf_analyzer.
"""

import sys

from sdtools.perf_analyzer import main

if __name__ == "__main__":
    sys.exit(main())
