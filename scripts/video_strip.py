"""The README's before/after strip of a restyled clip (docs/video_strip.png).

    .venv/bin/python scripts/video_strip.py [--config tests/config.test.yaml] [--url HOST:PORT]
        [--out docs/video_strip.png]

The work is done by sdtools.video_strip.
"""

import sys

from sdtools.video_strip import main

if __name__ == "__main__":
    sys.exit(main())
