#!/usr/bin/env python3
"""Flicker of the realtime model on a still scene and a slow pan, per temporal option, beside fps
and how well the pan is still followed, side by side in one run.

    python scripts/bench_flicker.py [--config config.yaml] [--frames 48] [--rounds 3] [--threads 2]

The work is done by sdtools.bench_flicker.
"""

import sys

from sdtools.bench_flicker import main

if __name__ == "__main__":
    sys.exit(main())
