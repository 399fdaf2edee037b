#!/usr/bin/env python3
"""Load benchmark of the running stack through the frontends' own protocol.

    .venv/bin/python scripts/load_benchmark.py [--url http://127.0.0.1:8000] [--modes realtime,canvas]
        [--clients 2 | --sessions 1 4 16] [--duration 20] [--max-frames 300] [--canvas-window 2] [--size WxH]
        [--frontend-pid PID] [--json FILE]

The work is done by sdtools.load_benchmark.
"""

import contextlib
import sys

from sdtools.load_benchmark import main

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
