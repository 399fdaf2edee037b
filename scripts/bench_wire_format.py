"""Measure the image wire format between frontends and Triton: raw RGB tensors or encoded JPEG bytes.

    .venv/bin/python scripts/bench_wire_format.py --url 127.0.0.1:8001 [--size 512] [--runs 200]

The work is done by sdtools.bench_wire_format.
"""

import sys

from sdtools.bench_wire_format import main

if __name__ == "__main__":
    sys.exit(main())
