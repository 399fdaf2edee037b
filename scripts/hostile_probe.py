#!/usr/bin/env python3
"""Does one client sending costly images slow anybody else? /healthz and realtime latency, with and without.

    .venv/bin/python scripts/hostile_probe.py [--url http://127.0.0.1:8000] [--clients 4] [--seconds 15]
        [--hostile-fps 100] [--config tests/config.test.yaml] [--json FILE]

Without --url it starts Triton and the frontends itself. The work is done by sdtools.hostile_probe.
"""

import contextlib
import sys

from sdtools.hostile_probe import main

if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
