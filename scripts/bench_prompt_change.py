#!/usr/bin/env python3
"""What a prompt change costs a realtime frame, in process (no Triton), against a frame that changes nothing.

    python scripts/bench_prompt_change.py [--config config.yaml] [--rounds 15] [--threads N]

The work is done by sdtools.bench_prompt_change.
"""

from sdtools.bench_prompt_change import main

if __name__ == "__main__":
    main()
