#!/usr/bin/env python3
"""Model throughput of the PyTorch GPU path with the real sd-turbo architecture, no download needed.

    python scripts/gpu_benchmark.py --out artifacts/gpu_benchmark.md            # one GPU: sd-turbo, 512x512, fp16
    python scripts/gpu_benchmark.py --device cpu --arch tiny --size 128         # seconds on a CPU (CI keeps it working)

The work is done by sdtools.gpu_benchmark.
"""

import sys

from sdtools.gpu_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
