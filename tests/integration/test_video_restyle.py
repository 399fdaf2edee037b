"""`python -m sdvideo restyle` against a real tritonserver with the demo model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdconfig import load_settings
from sdmodels.evaluation import best_lag_error
from sdtools.video_clip import write_clip
from sdvideo.__main__ import main
from sdvideo.frames_in import fit
from tests.servers import ROOT, TritonServer
from tests.video_files import audio_only, audio_packets, circle_x, decoded_frames, image_folder, stream_facts

pytestmark = pytest.mark.triton

PROMPT = "a green circle and a red square on a white background"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "shapes.mp4", frames=48, fps=12)


def restyle(triton: TritonServer, *args: str) -> list[str]:
    return ["restyle", *args, "--config", str(triton.config_file), "--url", triton.grpc_url, "--quiet"]


def command(triton: TritonServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "sdvideo", *restyle(triton, *args)]


def smoothing_lag(triton: TritonServer, mode: str) -> int:
    """Frames a pan trails by from realtime's input smoothing s (about s / (1 - s)); the job itself adds none."""
    if mode != "realtime":
        return 0
    s = load_settings(triton.config_file).realtime.pipeline.input_smoothing
    return int(s / (1 - s))


@pytest.mark.parametrize("mode", ["canvas", "realtime"])
def test_a_clip_round_trips_with_its_audio_and_follows_the_input(
    triton_server: TritonServer, clip: Path, tmp_path: Path, mode: str
) -> None:
    output = tmp_path / f"{mode}.mp4"
    assert main(restyle(triton_server, str(clip), str(output), "--mode", mode, "--prompt", PROMPT)) == 0
    inputs = [fit(Image.fromarray(frame), 128, 128) for frame in decoded_frames(clip)]  # as the model saw them
    outputs = decoded_frames(output)
    assert len(outputs) == len(inputs) == 48
    assert stream_facts(output) == (12, ["video", "audio"])
    assert audio_packets(output) == audio_packets(clip)  # copied, not re-encoded
    assert outputs[0].shape == (128, 128, 3)
    lag, error = best_lag_error([circle_x(f) for f in inputs], [circle_x(f) for f in outputs])
    assert lag <= smoothing_lag(triton_server, mode), f"{mode}: the output trails the input by {lag} frames"
    assert error < 0.03, f"{mode}: the circle's centroid is {error:.3f} of the width off"
    first, last = circle_x(outputs[0]), circle_x(outputs[-1])
    assert first is not None and last is not None and last - first > 0.4  # it crosses as the input's does
    assert not output.with_name(output.name + ".parts").exists()


def test_an_image_folder_becomes_a_folder_of_frames(triton_server: TritonServer, tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "shots", 10)
    output = tmp_path / "styled"
    assert main(restyle(triton_server, str(folder), str(output), "--prompt", PROMPT)) == 0
    frames = sorted(output.glob("frame_*.jpg"))
    assert [f.name for f in frames] == [f"frame_{i:06d}.jpg" for i in range(10)]
    xs = [circle_x(np.asarray(Image.open(f).convert("RGB"))) for f in frames]
    assert xs[0] is not None and xs[-1] is not None and xs[-1] - xs[0] > 0.3


def test_a_glob_of_images_becomes_a_video(triton_server: TritonServer, tmp_path: Path) -> None:
    image_folder(tmp_path / "shots", 6)
    output = tmp_path / "glob.mp4"
    assert main(restyle(triton_server, str(tmp_path / "shots" / "shot_00*.png"), str(output))) == 0
    assert len(decoded_frames(output)) == 6
    assert stream_facts(output) == (24, ["video"])


def interrupt_after(cmd: list[str], parts: Path, frames: int) -> int:
    """Run `cmd`, press Ctrl-C once `frames` frames are made, and return its exit status."""
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while len(list(parts.glob("frame_*.jpg"))) < frames:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    return process.wait(60)


@pytest.mark.parametrize("mode", ["canvas", "realtime"])
def test_resume_after_ctrl_c_gives_the_uninterrupted_output(
    triton_server: TritonServer, tmp_path: Path, mode: str
) -> None:
    """In flight 1: the test server batches concurrent requests together, which changes float rounding."""
    clip = write_clip(tmp_path / "long.mp4", frames=96, fps=12)
    resumed, whole = tmp_path / "resumed.mp4", tmp_path / "whole.mp4"
    args = ("--mode", mode, "--prompt", PROMPT, "--in-flight", "1", "--segment-frames", "20")
    status = interrupt_after(command(triton_server, str(clip), str(resumed), *args), Path(f"{resumed}.parts"), 30)
    assert status == 130
    partial = decoded_frames(resumed)  # a playable file with the frames done so far, and their audio
    assert 28 <= len(partial) < 96
    assert stream_facts(resumed)[1] == ["video", "audio"]
    assert main(restyle(triton_server, str(clip), str(resumed), *args, "--resume")) == 0
    assert main(restyle(triton_server, str(clip), str(whole), *args)) == 0
    assert resumed.read_bytes() == whole.read_bytes()


def test_resume_refuses_other_settings(triton_server: TritonServer, clip: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "frames"
    assert main(restyle(triton_server, str(clip), str(output), "--prompt", PROMPT)) == 0
    assert main(restyle(triton_server, str(clip), str(output), "--prompt", "a red star", "--resume")) == 2
    assert "made with other params" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["canvas", "realtime"])
def test_a_failing_frame_is_retried_then_reported_and_the_run_goes_on(
    triton_server: TritonServer, clip: Path, tmp_path: Path, capsys, mode: str
) -> None:
    """A prompt past the tokenizer's limit passes the schema but the model refuses it: seconds 1 to 2 fail.
    A realtime sequence goes on past a refused frame (its state is intact), so only those frames stand in."""
    too_long = " ".join(["a blue circle"] * 40)
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps({"0": PROMPT, "1": too_long, "2": PROMPT}))
    output = tmp_path / "out.mp4"
    args = ("--schedule", str(schedule), "--mode", mode, "--segment-frames", "20")
    assert main(restyle(triton_server, str(clip), str(output), *args)) == 0
    err = capsys.readouterr().err
    failed = sorted(int(line.split("frame ")[1].split()[0]) for line in err.splitlines() if "failed twice" in line)
    assert failed == list(range(12, 24))
    assert "tokens" in err or "refused it twice" in err
    frames = decoded_frames(output)
    assert len(frames) == 48
    assert circle_x(frames[30]) is not None  # after the refused second the restyle goes on


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: (d / "notes.mp4").write_text("not a video at all") and d / "notes.mp4", "not a video"),
        (lambda d: audio_only(d / "tone.m4a"), "no video stream"),
        (lambda d: d / "missing.mp4", "no such file or folder"),
        (lambda d: d / "empty", "holds no images"),
        (lambda d: _corrupt_third(image_folder(d / "bad", 5)), "unreadable frame 2"),
        (lambda d: _sliver(d / "sliver"), "cannot be cropped"),
    ],
    ids=["not-a-video", "no-video-stream", "missing", "empty-folder", "unreadable-frame", "uncroppable"],
)
def test_bad_inputs_get_errors_that_name_file_and_reason(
    triton_server: TritonServer, tmp_path: Path, capsys, make, reason: str
) -> None:
    (tmp_path / "empty").mkdir()
    source = make(tmp_path)
    assert main(restyle(triton_server, str(source), str(tmp_path / "out.mp4"))) == 2
    err = capsys.readouterr().err
    assert reason in err and str(source.name) in err, err


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("--param", "seed=-4"), "parameter 'seed' must be between 0 and"),
        (("--param", "colour=red"), "unknown parameter 'colour'"),
        (("--param", "t_index_list=[40,30]"), "strictly increasing"),
        (("--param", "seed"), "write key=value"),
        (("--schedule", "missing.yaml"), "cannot read the schedule"),
    ],
)
def test_bad_parameters_are_refused_before_any_frame(
    triton_server: TritonServer, clip: Path, tmp_path: Path, capsys, args: tuple[str, ...], reason: str
) -> None:
    assert main(restyle(triton_server, str(clip), str(tmp_path / "out.mp4"), *args)) == 2
    assert reason in capsys.readouterr().err


def test_a_schedule_changes_the_prompt_at_its_times(triton_server: TritonServer, clip: Path, tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text('0: "a red circle on a white background"\n2.0: "a blue circle on a white background"\n')
    output = tmp_path / "scheduled.mp4"
    assert main(restyle(triton_server, str(clip), str(output), "--schedule", str(schedule))) == 0
    frames = decoded_frames(output)
    lower = [f[int(0.36 * f.shape[0]) :].reshape(-1, 3).astype(float) for f in frames]
    redness = [float(np.mean(p[:, 0] - p[:, 2])) for p in lower]
    assert np.mean(redness[4:20]) > np.mean(redness[28:44]) + 5


def _corrupt_third(folder: Path) -> Path:
    third = sorted(folder.iterdir())[2]
    third.write_bytes(third.read_bytes()[:40])
    return folder


def _sliver(folder: Path) -> Path:
    folder.mkdir()
    Image.new("RGB", (400, 10), "white").save(folder / "a.png")
    return folder
