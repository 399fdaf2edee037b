"""Restyling a clip: frames/s of realtime and canvas, in flight 1 against 4, and the time to the first frame.

    .venv/bin/python scripts/bench_video.py [--config tests/config.test.yaml] [--url HOST:PORT]
        [--frames 96] [--segment-frames 24] [--repeats 3] [--out artifacts/bench_video.md]

The work is done by sdtools.bench_video.
"""

import sys

from sdtools.bench_video import main

if __name__ == "__main__":
    sys.exit(main())
