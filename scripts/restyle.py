"""Restyle a video file or an image sequence: the same as `python -m sdvideo restyle`.

    .venv/bin/python scripts/restyle.py INPUT OUTPUT [--mode realtime|canvas] [--prompt TEXT] [--param key=value]
        [--schedule FILE] [--in-flight N] [--resume] [--config FILE] [--url HOST:PORT]

The work is done by sdvideo (see `--help`).
"""

import sys

from sdvideo.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["restyle", *sys.argv[1:]]))
