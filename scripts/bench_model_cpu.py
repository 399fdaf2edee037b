#!/usr/bin/env python3
"""Realtime frame time of the configured model in process (no Triton): sessions one after another
and in one batch, NCHW and channels-last memory, side by side.

    python scripts/bench_model_cpu.py [--config config.yaml] [--sizes 128 512] [--batch 4]
        [--threads N] [--runs 9]

The work is done by sdtools.bench_model_cpu.
"""

from sdtools.bench_model_cpu import main

if __name__ == "__main__":
    main()
