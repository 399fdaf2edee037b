#!/usr/bin/env python3
"""Soak test: many concurrent sessions of both modes for minutes, loopback only, bounded.

    .venv/bin/python scripts/soak_test.py [--realtime 26] [--canvas 26] [--duration 300]
        [--draw-every 3] [--churn-every 60] [--drain 180] [--json FILE] [--logs DIR]
        [--url http://127.0.0.1:8000 --triton-metrics 127.0.0.1:8003 [--frontend-pid PID]]

The work is done by sdtools.soak; exit status 0 when the run passed, 1 otherwise.
"""

import sys

from sdtools.soak import main

if __name__ == "__main__":
    sys.exit(main())
