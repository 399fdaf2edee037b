"""Cross-session batching, on and off, side by side: aggregate fps and latency for 1/2/4/8 sessions.

    .venv/bin/python scripts/bench_batching.py [--config tests/config.test.yaml] [--sessions 1 2 4 8]
        [--seconds 6] [--repeats 3] [--threads 2 1] [--modes realtime canvas] [--out artifacts/batching.md]

The work is done by sdtools.bench_batching.
"""

import sys

from sdtools.bench_batching import main

if __name__ == "__main__":
    sys.exit(main())
