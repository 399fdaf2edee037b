"""Benchmark both StreamDiffusion models with Triton's perf_analyzer over gRPC, with real JPEG frames.

Against a running server (scripts/launch_triton.py). The canvas model is measured as a plain
stateless model; the realtime model as the sequence model it is: perf_analyzer opens one Triton
sequence per unit of concurrency and sends `--sequence-length` frames in each (START on the first,
END on the last). The input frames are JPEGs of the configured resolution, a blob drifting across
a gradient so that neighbouring frames are alike, as a webcam's are.

By default each measurement is a fixed number of requests (`--request-count`), which keeps a run
short on a CPU machine; `--measurement-interval` switches to perf_analyzer's own time windows with
its stability check, the better choice on a GPU. A table of throughput and latency percentiles
is printed at the end; `--output-dir` keeps the input JSON and perf_analyzer's CSV files.
"""

from __future__ import annotations

import argparse
import base64
import csv
import importlib.util
import io
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdconfig import MODES, ConfigError, Mode, Settings, config_path, load_settings

OUTPUT_TAIL_CHARS = 3000
HINTS = {
    "libb64": "perf_analyzer needs Debian's libb64: apt-get install libb64-0d",
    "libcudart": "perf_analyzer needs libcudart.so.12: pip install nvidia-cuda-runtime-cu12 (scripts/setup.sh does)",
    "failed to connect": "no Triton server answers there: start one with scripts/launch_triton.py, or pass --url",
    "Connection refused": "no Triton server answers there: start one with scripts/launch_triton.py, or pass --url",
}


@dataclass(frozen=True)
class Result:
    model: str
    concurrency: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


# --------------------------------------------------------------------------- input data


def frames(width: int, height: int, count: int, quality: int = 90) -> list[bytes]:
    """`count` JPEG frames: a soft blob drifting over a colour gradient (neighbours look alike)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([xx / width * 200 + 30, yy / height * 160 + 40, np.full_like(xx, 120)], axis=-1)
    out = []
    for i in range(count):
        cx = width * (0.3 + 0.4 * i / max(count - 1, 1))
        cy = height * 0.5
        radius = min(width, height) * 0.2
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius * radius))[..., None]
        image = background * (1 - blob) + np.array([240, 220, 60], np.float32) * blob
        buffer = io.BytesIO()
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def bytes_element(data: bytes) -> dict[str, str]:
    """One BYTES element in perf_analyzer's JSON: base64 of a 4-byte little-endian length, then the bytes."""
    return {"b64": base64.b64encode(struct.pack("<I", len(data)) + data).decode("ascii")}


def input_data(images: Sequence[bytes], prompt: str, seed: int) -> dict[str, Any]:
    """perf_analyzer's --input-data JSON: one step per frame, used round-robin (and per sequence step)."""
    steps = [{"IMAGE": bytes_element(image), "PROMPT": [prompt], "SEED": [seed]} for image in images]
    return {"data": steps}


# --------------------------------------------------------------------------- running perf_analyzer


def cuda_runtime_lib() -> Path | None:
    """The lib/ folder of the nvidia-cuda-runtime-cu12 wheel, where perf_analyzer finds libcudart.so.12."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_runtime")
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(next(iter(spec.submodule_search_locations))) / "lib"
    return lib if lib.is_dir() else None


def perf_analyzer_binary(explicit: str | None) -> str:
    candidates = [explicit] if explicit else [str(Path(sys.executable).parent / "perf_analyzer"), "perf_analyzer"]
    for candidate in candidates:
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    raise SystemExit(
        "perf_analyzer not found: it ships with tritonclient[grpc]==2.51.0 in the virtual environment's bin/ "
        "(scripts/setup.sh installs it); or pass --perf-analyzer PATH"
    )


def perf_environment() -> dict[str, str]:
    env = dict(os.environ)
    lib = cuda_runtime_lib()
    if lib is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib), env.get("LD_LIBRARY_PATH")]))
    return env


def perf_command(
    binary: str,
    *,
    url: str,
    model: str,
    mode: Mode,
    data_file: Path,
    concurrency: int,
    csv_file: Path | None,
    args: argparse.Namespace,
    request_count: int | None = None,
) -> list[str]:
    command = [
        binary,
        "-i",
        "grpc",
        "-u",
        url,
        "-m",
        model,
        "--input-data",
        str(data_file),
        "--concurrency-range",
        f"{concurrency}:{concurrency}",
    ]
    if mode == "realtime":
        command += ["--sequence-length", str(args.sequence_length)]
    count = request_count if request_count is not None else args.request_count
    if args.measurement_interval and request_count is None:
        command += [
            "--measurement-interval",
            str(args.measurement_interval),
            "--stability-percentage",
            str(args.stability_percentage),
            "--max-trials",
            str(args.max_trials),
        ]
    else:
        command += ["--request-count", str(count)]
    if csv_file is not None:
        command += ["-f", str(csv_file)]
    return command


def run(command: list[str], env: dict[str, str], verbose: bool, timeout_s: float) -> tuple[int, str]:
    if verbose:
        print(f"$ {shlex.join(command)}", flush=True)
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, f"{output}\nperf_analyzer did not finish within {timeout_s:.0f} s (--timeout)"
    output = proc.stdout + proc.stderr
    if verbose:
        print(output, flush=True)
    return proc.returncode, output


def explain_failure(command: list[str], code: int, output: str) -> str:
    hints = sorted({hint for needle, hint in HINTS.items() if needle in output})
    lines = [f"perf_analyzer failed (exit code {code}): {shlex.join(command)}", output[-OUTPUT_TAIL_CHARS:].rstrip()]
    lines += [f"hint: {hint}" for hint in hints]
    return "\n".join(lines)


def parse_csv(path: Path, model: str) -> list[Result]:
    """perf_analyzer's -f CSV: one row per concurrency level, latencies in microseconds."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Result(
            model=model,
            concurrency=int(row["Concurrency"]),
            throughput=float(row["Inferences/Second"]),
            p50_ms=float(row["p50 latency"]) / 1000,
            p95_ms=float(row["p95 latency"]) / 1000,
            p99_ms=float(row["p99 latency"]) / 1000,
        )
        for row in rows
    ]


def format_table(results: Sequence[Result]) -> str:
    header = ("model", "concurrency", "throughput infer/s", "p50 ms", "p95 ms", "p99 ms")
    rows = [
        (r.model, str(r.concurrency), f"{r.throughput:.2f}", f"{r.p50_ms:.1f}", f"{r.p95_ms:.1f}", f"{r.p99_ms:.1f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


# --------------------------------------------------------------------------- main


def positive_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def modes(text: str) -> list[Mode]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"models are named by mode, {'/'.join(MODES)}; got {text!r}")
    return chosen  # type: ignore[return-value]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="YAML file (default: $SD_CONFIG or config.yaml)")
    parser.add_argument("--url", help="Triton gRPC endpoint HOST:PORT (default: the first of triton.urls)")
    parser.add_argument("--models", type=modes, default=list(MODES), help="realtime,canvas (default: both)")
    parser.add_argument("--concurrency", type=positive_ints, default=[1], help="levels, e.g. 1,2,4 (default: 1)")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--request-count", type=int, default=12, help="requests per measurement (default: 12)")
    window.add_argument("--measurement-interval", type=int, help="ms per time window (perf_analyzer's stable mode)")
    parser.add_argument("--stability-percentage", type=float, default=10, help="with --measurement-interval")
    parser.add_argument("--max-trials", type=int, default=10, help="with --measurement-interval")
    parser.add_argument("--sequence-length", type=int, default=6, help="frames per realtime sequence (default: 6)")
    parser.add_argument("--warmup", type=int, default=2, help="requests sent first and not measured (default: 2)")
    parser.add_argument("--frames", type=int, default=4, help="distinct input frames (default: 4)")
    parser.add_argument("--prompt", help="default: pipeline.default_prompt")
    parser.add_argument("--seed", type=int, help="default: pipeline.default_seed")
    parser.add_argument("--perf-analyzer", help="the perf_analyzer binary (default: the one beside this Python)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one perf_analyzer run may take")
    parser.add_argument("--output-dir", type=Path, help="keep the input JSON and the CSV files here")
    parser.add_argument("--verbose", action="store_true", help="show each command and perf_analyzer's own report")
    args = parser.parse_args(argv)
    if args.request_count < 1 or args.sequence_length < 1 or args.frames < 1 or args.warmup < 0:
        parser.error("--request-count, --sequence-length and --frames must be positive, --warmup not negative")
    return args


def benchmark(args: argparse.Namespace, settings: Settings, workdir: Path) -> tuple[list[Result], list[str]]:
    url = args.url or settings.triton.urls[0]
    pipe = settings.pipeline
    images = frames(pipe.width, pipe.height, args.frames)
    data = input_data(images, args.prompt or pipe.default_prompt, pipe.default_seed if args.seed is None else args.seed)
    data_file = workdir / "input_data.json"
    data_file.write_text(json.dumps(data))
    binary = perf_analyzer_binary(args.perf_analyzer)
    env = perf_environment()
    print(f"perf_analyzer against {url}: {pipe.width}x{pipe.height} JPEG frames ({len(images[0])} bytes each)")

    results: list[Result] = []
    failures: list[str] = []
    for mode in args.models:
        model = settings.model_name(mode)
        common = {"url": url, "model": model, "mode": mode, "data_file": data_file, "args": args}
        if args.warmup:
            warmup = max(args.warmup, args.sequence_length) if mode == "realtime" else args.warmup
            command = perf_command(binary, concurrency=1, csv_file=None, request_count=warmup, **common)
            code, output = run(command, env, args.verbose, args.timeout)
            if code != 0:
                failures.append(explain_failure(command, code, output))
                continue
        for concurrency in args.concurrency:
            csv_file = workdir / f"{model}_c{concurrency}.csv"
            command = perf_command(binary, concurrency=concurrency, csv_file=csv_file, **common)
            print(f"measuring {model} at concurrency {concurrency}", flush=True)
            code, output = run(command, env, args.verbose, args.timeout)
            if code != 0 or not csv_file.exists():
                failures.append(explain_failure(command, code, output))
                continue
            results.extend(parse_csv(csv_file, model))
    return results, failures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings((args.config or config_path()).resolve())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        results, failures = benchmark(args, settings, args.output_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="perf_analyzer-") as tmp:
            results, failures = benchmark(args, settings, Path(tmp))
    for failure in failures:
        print(failure, file=sys.stderr)
    if results:
        print()
        print(format_table(results))
    return 1 if failures or not results else 0
