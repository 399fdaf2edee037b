#!/usr/bin/env python3
"""Train the demo model from scratch (about an hour on 2 cores) into models/demo-sd.

    python scripts/train_demo_model.py [--output models/demo-sd] [--work models/.demo-training] [--quick]

An interrupted run resumes from the work folder's checkpoints; --quick runs every stage for a
few steps (what CI does to keep the trainer working).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from sdmodels.demo_model import Recipe
from sdmodels.training import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("models/demo-sd"))
    parser.add_argument("--work", type=Path, default=Path("models/.demo-training"))
    parser.add_argument("--quick", action="store_true", help="a few steps per stage, to check the code")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[train] %(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    started = time.perf_counter()
    output = train(args.output, args.work, Recipe.quick() if args.quick else Recipe())
    size = sum(f.stat().st_size for f in output.rglob("*") if f.is_file()) / 1e6
    minutes = (time.perf_counter() - started) / 60
    print(f"demo model ready: {output.resolve()} ({size:.1f} MB, trained in {minutes:.1f} min)")


if __name__ == "__main__":
    main()
