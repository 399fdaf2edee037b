#!/usr/bin/env python3
"""Fuzz the wire protocol against a real frontends process (and the Triton behind it) with hypothesis.

    .venv/bin/python scripts/fuzz_protocol.py [--examples 2000] [--seed 0] [--answer-timeout 120]
        [--url http://127.0.0.1:8000] [--logs DIR]

The work is done by sdtools.fuzz; exit status 1 on the first property violated.
"""

import sys

from sdtools.fuzz import main

if __name__ == "__main__":
    sys.exit(main())
