#!/usr/bin/env python3
"""Chaos run through the production topology on this machine: nginx (TLS) -> two frontends -> two
Tritons, one part killed and restarted every --fault-every seconds under realtime and canvas load.

    .venv/bin/python scripts/chaos_test.py [--sessions 100] [--duration 1800] [--fault-every 300]
                                           [--draw-every S] [--json FILE] [--folder DIR]

Prints a table (sessions served, drawings answered/refused/cut/silently lost, realtime recovery
after each fault, RSS of every process) and exits 1 when a drawing was silently lost, a session
was never served or not reconnected, or memory grew. The code is sdtools/chaos.py and
sdtools/topology.py; nginx comes from Debian (scripts/setup.sh --dev).
"""

import sys

from sdtools.chaos import main

if __name__ == "__main__":
    sys.exit(main())
