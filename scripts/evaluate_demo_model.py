#!/usr/bin/env python3
"""The demo model's figures on held-out scenes, and the picture grid of drawings, camera frames and results.

    python scripts/evaluate_demo_model.py --url 127.0.0.1:8001        # the served models over gRPC
    python scripts/evaluate_demo_model.py --in-process                 # the model side's services, no Triton
        [--config config.yaml] [--model models/demo-sd] [--grid docs/demo_model_grid.png] [--count 50]

Canvas and colour figures use each variant's defaults from the configuration (steps, guidance);
the drawings' own captions are their prompts.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from sdconfig import load_settings
from sdmodels.evaluation import InProcess, OverTriton, autoencoder_psnr
from sdmodels.evaluation_report import Report, evaluate_canvas, evaluate_colours, evaluate_realtime, write_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="Triton's gRPC address, e.g. 127.0.0.1:8001")
    where.add_argument("--in-process", action="store_true", help="run the model side's services here")
    parser.add_argument("--config", type=Path, default=Path("config.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models/demo-sd"), help="for the autoencoder figures")
    parser.add_argument("--grid", type=Path, default=Path("docs/demo_model_grid.png"))
    parser.add_argument("--count", type=int, default=50, help="held-out drawings (and colour cases) per figure")
    parser.add_argument("--frames", type=int, default=32, help="frames of the moving shape for realtime")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    settings = load_settings(args.config)
    size = settings.pipeline.width
    backend = (
        InProcess(args.config)
        if args.in_process
        else OverTriton(args.url, settings.triton.realtime_model, settings.triton.canvas_model)
    )
    report = Report()

    def autoencoders() -> None:
        for name, value in autoencoder_psnr(args.model).items():
            report.figures[f"{name}: reconstruction PSNR dB (256x256)"] = value

    steps = [
        ("autoencoders", autoencoders),
        ("canvas fidelity", lambda: evaluate_canvas(report, backend.canvas, size, args.count, args.seed)),
        ("colour words", lambda: evaluate_colours(report, backend.canvas, size, args.count, args.seed)),
        ("realtime tracking", lambda: evaluate_realtime(report, backend.realtime, size, args.frames)),
    ]
    for name, step in steps:
        started = time.perf_counter()
        print(f"[evaluate] {name} ...", flush=True)
        step()
        print(f"[evaluate] {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    print("\n".join(report.lines()))
    print(f"grid: {write_grid(report, args.grid)}")


if __name__ == "__main__":
    main()
