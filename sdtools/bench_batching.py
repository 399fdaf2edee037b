"""Cross-session batching, on and off, side by side: aggregate fps and latency for 1/2/4/8 sessions.

Starts two tritonservers through the launcher with the same configuration, one with
`batch_across_sessions` on for both variants and one with it off, then for each session count
alternates between them --repeats times (so drift on a shared machine hits both alike). Each
session is a client thread that sends its next frame when the previous answer arrived, as a
webcam session does: realtime as one Triton sequence per session, canvas as one request per
drawing. From Triton's statistics: "mean batch" is what Triton handed the model per execution,
"model ms/frame" the time in the model's execute() per frame, the part that batching changes.

On a CPU-only machine each model gets --threads intra-op threads (triton.cpu_threads_per_model);
the default gives the model under test every core, as a GPU model has the whole GPU (only one
model is busy at a time here). Several values run the whole table once per value.

    .venv/bin/python scripts/bench_batching.py [--config tests/config.test.yaml] [--sessions 1 2 4 8]
        [--seconds 6] [--repeats 3] [--threads 2 1] [--modes realtime canvas] [--out artifacts/batching.md]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image

from sdconfig import Settings, load_settings
from sdtools.local_stack import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    label: str
    url: str
    process: subprocess.Popen[str]


def start_server(label: str, config: Path, batching: bool, threads: int, run_dir: Path) -> Server:
    grpc, http, metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SD__REALTIME__PIPELINE__BATCH_ACROSS_SESSIONS": "true" if batching else "false",
        "SD__CANVAS__PIPELINE__BATCH_ACROSS_SESSIONS": "true" if batching else "false",
        "SD__TRITON__CPU_THREADS_PER_MODEL": str(threads),
        "SD__TRITON__LOG_FILE": str(run_dir / f"{label}.log"),
        "PYTHONUNBUFFERED": "1",
    }
    args = [sys.executable, str(ROOT / "scripts" / "launch_triton.py"), "--config", str(config)]
    args += ["--grpc-port", str(grpc), "--http-port", str(http), "--metrics-port", str(metrics)]
    args += ["--run-dir", str(run_dir / label)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("READY"):
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return Server(label, f"127.0.0.1:{grpc}", process)
        print(f"  [{label}] {line.rstrip()}", file=sys.stderr)
    raise SystemExit(f"{label}: tritonserver did not start (see {run_dir / label}.log)")


def frames(size: int, count: int, seed: int) -> list[bytes]:
    """A moving scene: a bright disc travelling over a gradient, as JPEG."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for i in range(count):
        cx = (0.2 + 0.6 * ((i + seed) % count) / count) * size
        disc = ((xx - cx) ** 2 + (yy - size / 2) ** 2) < (size / 6) ** 2
        rgb = np.stack([xx / size * 200, yy / size * 200, np.full_like(xx, 80)], -1)
        rgb[disc] = (250, 240, 60)
        buffer = io.BytesIO()
        Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def image_input(data: bytes) -> list[grpcclient.InferInput]:
    tensor = grpcclient.InferInput("IMAGE", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    return [tensor]


def session(url: str, model: str, stateful: bool, pictures: list[bytes], stop_at: float, sid: int) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    latencies: list[float] = []
    i = 0
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        if stateful:
            client.infer(model, image_input(pictures[i % len(pictures)]), sequence_id=sid, sequence_start=i == 0)
        else:
            client.infer(model, image_input(pictures[i % len(pictures)]))
        latencies.append(time.perf_counter() - start)
        i += 1
    if stateful and i:
        client.infer(model, image_input(b""), sequence_id=sid, sequence_end=True)
    return latencies


@dataclass(frozen=True)
class Counts:
    """Triton's statistics of one model so far."""

    inferences: float
    executions: float
    compute_ms: float
    """Time in the model's execute(), summed over executions (batch_stats compute_infer)."""


def counts(server: Server, model: str) -> Counts:
    client = grpcclient.InferenceServerClient(server.url)
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    compute_ns = sum(int(b["compute_infer"]["ns"]) for b in stats.get("batch_stats", []))
    return Counts(float(stats.get("inference_count", 0)), float(stats.get("execution_count", 0)), compute_ns / 1e6)


@dataclass
class Sample:
    """One timed run of a cell on one server."""

    latencies: list[float]
    seconds: float
    inferences: float
    executions: float
    compute_ms: float


@dataclass
class Result:
    fps: float
    """Median over the repeats of the aggregate frames per second."""
    p50_ms: float
    p95_ms: float
    """Over every frame of every repeat."""
    frames: int
    mean_batch: float
    model_ms: float
    """Time in the model per frame: what batching changes, without gRPC, queueing and the clients."""


def measure(server: Server, model: str, stateful: bool, sessions: int, seconds: float, size: int) -> Sample:
    pictures = frames(size, 30, 0)
    session(server.url, model, stateful, pictures, time.monotonic() + 1.0, 10**9)  # warm-up
    before = counts(server, model)
    stop_at = time.monotonic() + seconds
    results: list[list[float]] = [[] for _ in range(sessions)]
    started = time.monotonic()

    def run(k: int) -> None:
        results[k] = session(server.url, model, stateful, frames(size, 30, k), stop_at, 1000 * (k + 1) + sessions)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    after = counts(server, model)
    return Sample(
        latencies=[x for r in results for x in r],
        seconds=elapsed,
        inferences=after.inferences - before.inferences,
        executions=after.executions - before.executions,
        compute_ms=after.compute_ms - before.compute_ms,
    )


def combine(samples: list[Sample]) -> Result:
    every = sorted(x for sample in samples for x in sample.latencies)
    return Result(
        fps=statistics.median(len(sample.latencies) / sample.seconds for sample in samples),
        p50_ms=statistics.median(every) * 1000,
        p95_ms=every[int(0.95 * (len(every) - 1))] * 1000,
        frames=len(every),
        mean_batch=sum(sample.inferences for sample in samples) / max(1.0, sum(s.executions for s in samples)),
        model_ms=sum(s.compute_ms for s in samples) / max(1.0, sum(s.inferences for s in samples)),
    )


Rows = list[tuple[str, int, Result, Result]]
"""(mode, sessions, batching on, batching off) per cell."""


def measure_all(args: argparse.Namespace, settings: Settings, threads: int) -> Rows:
    """Every (mode, sessions) cell on a pair of servers whose models have `threads` threads each."""
    size = settings.pipeline.width
    run_dir = args.run_dir / f"threads-{threads}"
    run_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"starting two tritonservers ({args.config.name}, {size}x{size}, {threads} threads per model) ...",
        file=sys.stderr,
    )
    servers = {"on": start_server("on", args.config, True, threads, run_dir)}
    rows = []
    try:
        servers["off"] = start_server("off", args.config, False, threads, run_dir)
        for mode in args.modes:
            model = settings.model_name(mode)
            for n in args.sessions:
                samples: dict[str, list[Sample]] = {"on": [], "off": []}
                for repeat in range(args.repeats):
                    for label in ("on", "off"):
                        sample = measure(servers[label], model, mode == "realtime", n, args.seconds, size)
                        samples[label].append(sample)
                        print(
                            f"{mode:<9}{n:>3} sessions  {threads} threads  repeat {repeat + 1}  batching {label:<3} "
                            f"{len(sample.latencies) / sample.seconds:7.1f} fps  "
                            f"mean batch {sample.inferences / max(1.0, sample.executions):.2f}  "
                            f"model {sample.compute_ms / max(1.0, sample.inferences):5.1f} ms/frame",
                            file=sys.stderr,
                        )
                measured = {label: combine(runs) for label, runs in samples.items()}
                rows.append((mode, n, measured["on"], measured["off"]))
    finally:
        for server in servers.values():
            server.process.terminate()
            server.process.wait(30)
    return rows


def table(args: argparse.Namespace, settings: Settings, results: dict[int, Rows]) -> str:
    config = args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
    size = settings.pipeline.width
    lines = [
        f"Configuration: {config}, {size}x{size}, {args.repeats} alternating runs of {args.seconds:g} s per cell "
        f"and server (fps: their median; latency: all their frames), {os.cpu_count()} CPU cores.",
        "",
        "| mode | threads per model | sessions | fps on | fps off | gain | p50 on (ms) | p50 off (ms) "
        "| p95 on (ms) | p95 off (ms) | mean batch on | model ms/frame on | model ms/frame off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for threads, rows in results.items():
        for mode, n, on, off in rows:
            lines.append(
                f"| {mode} | {threads} | {n} | {on.fps:.1f} | {off.fps:.1f} | {on.fps / off.fps:.2f}x | "
                f"{on.p50_ms:.0f} | {off.p50_ms:.0f} | {on.p95_ms:.0f} | {off.p95_ms:.0f} | {on.mean_batch:.2f} | "
                f"{on.model_ms:.1f} | {off.model_ms:.1f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "tests" / "config.test.yaml")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell and server, alternating")
    parser.add_argument("--modes", nargs="+", default=["realtime", "canvas"])
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[os.cpu_count() or 1],
        help="intra-op threads per model on the CPU (default: every core)",
    )
    parser.add_argument("--run-dir", type=Path, default=ROOT / "run" / "bench-batching")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out

    settings = load_settings(args.config)
    results = {threads: measure_all(args, settings, threads) for threads in args.threads}
    text = table(args, settings, results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0
