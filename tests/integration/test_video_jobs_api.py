"""The /video page's API on a real frontends process and tritonserver: limits, results, cleanup, the token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdtools.video_clip import write_clip
from tests.browser.servers import OwnFrontend
from tests.servers import TritonServer, free_port
from tests.video_files import audio_packets, decoded_frames

pytestmark = pytest.mark.triton

TOKEN = "video-jobs-test-token-0123456789"
TTL_S = 4


@pytest.fixture(scope="module")
def frontend(triton_server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnFrontend]:
    jobs = tmp_path_factory.mktemp("jobs")
    env = {
        "SD__VIDEO__JOBS_DIR": str(jobs),
        "SD__VIDEO__JOB_TTL_S": str(TTL_S),
        "SD__SERVER__SECURITY__ACCESS_TOKEN": TOKEN,
    }
    server = OwnFrontend(triton_server, free_port(), extra_env=env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    (folder / "notes.mp4").write_text("this is not a video")
    return {
        "short": write_clip(folder / "short.mp4", frames=24, fps=12),
        "long": write_clip(folder / "long.mp4", frames=96, fps=12),
        "lengthy": write_clip(folder / "lengthy.mp4", frames=21 * 12, fps=12, size=(64, 64)),
        "notes": folder / "notes.mp4",
    }


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, token: bool = True):
    request = urllib.request.Request(url, data=data, headers={**(headers or {})})
    if token:
        request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def upload(base: str, clip: Path, **fields: str) -> tuple[int, dict[str, Any]]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="clip"; filename="{clip.name}"\r\n'
    parts.append(head.encode() + b"Content-Type: video/mp4\r\n\r\n" + clip.read_bytes() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, raw, _ = call(f"{base}/api/video/jobs", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, json.loads(raw)


def wait_done(base: str, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, raw, _ = call(f"{base}/api/video/jobs/{job_id}")
        assert status == 200, raw
        state = json.loads(raw)
        if state["state"] != "running":
            return state
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


def test_a_job_runs_to_a_download_and_a_second_one_meanwhile_is_refused(
    frontend: OwnFrontend, clips: dict[str, Path], tmp_path: Path
) -> None:
    base = frontend.base_url
    status, job = upload(base, clips["long"], mode="canvas", prompt="a green circle and a red square", seed="3")
    assert status == 201, job
    status, refused = upload(base, clips["short"], mode="canvas")
    assert status == 429 and "video jobs are running" in refused["message"]
    status, raw, _ = call(f"{base}/api/video/jobs/{job['id']}/result")
    assert status == 409  # not done yet
    state = wait_done(base, job["id"])
    assert state["state"] == "done" and state["progress"]["done"] == 96, state
    status, raw, headers = call(f"{base}/api/video/jobs/{job['id']}/result")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    result = tmp_path / "result.mp4"
    result.write_bytes(raw)
    assert len(decoded_frames(result)) == 96
    assert audio_packets(result) == audio_packets(clips["long"])
    status, preview, headers = call(f"{base}/api/video/jobs/{job['id']}/preview")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and preview[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("clip", "fields", "status", "reason"),
    [
        ("notes", {}, 400, "not a video"),
        ("lengthy", {}, 413, "at most 20 s"),
        ("short", {"mode": "sketch"}, 400, "is not served here"),
        ("short", {"seed": "-2"}, 400, "parameter 'seed' must be between"),
    ],
)
def test_bad_uploads_get_their_reason(
    frontend: OwnFrontend, clips: dict[str, Path], clip: str, fields: dict[str, str], status: int, reason: str
) -> None:
    answer_status, answer = upload(frontend.base_url, clips[clip], **fields)
    assert answer_status == status and reason in answer["message"], answer


def test_an_upload_past_the_size_limit_is_cut_off(frontend: OwnFrontend, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 3_100_000)  # video.max_upload_bytes is 3000000 in tests/config.test.yaml
    status, answer = upload(frontend.base_url, big)
    assert status == 413 and "video.max_upload_bytes" in answer["message"]


def test_a_streamed_upload_without_length_is_cut_off_at_the_limit(frontend: OwnFrontend) -> None:
    """Chunked, so no Content-Length tells the size up front: the server stops reading at the limit."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="clip"; filename="big.mp4"\r\n\r\n'.encode()

    def body():
        yield head
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB, past the 3 MB limit
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, raw, _ = call(f"{frontend.base_url}/api/video/jobs", body(), headers)  # type: ignore[arg-type]
    assert status == 413 and b"video.max_upload_bytes" in raw


def test_an_oversized_text_field_is_refused(frontend: OwnFrontend, clips: dict[str, Path]) -> None:
    status, answer = upload(frontend.base_url, clips["short"], prompt="a" * 20_000)
    assert status == 413 and "'prompt' is longer than" in answer["message"]


def test_the_api_wants_the_access_token(frontend: OwnFrontend) -> None:
    status, raw, _ = call(f"{frontend.base_url}/api/video/settings", token=False)
    assert status == 401 and b"access token" in raw
    status, raw, _ = call(f"{frontend.base_url}/api/video/settings")
    assert status == 200 and json.loads(raw)["max_concurrent_jobs"] == 1


def test_unknown_jobs_are_404_and_ended_jobs_are_cleaned_up(
    frontend: OwnFrontend, clips: dict[str, Path], triton_server: TritonServer
) -> None:
    base = frontend.base_url
    for path in ("/api/video/jobs/nosuchjob", "/api/video/jobs/..%2F..%2Fetc", "/api/video/jobs/" + "A" * 22):
        assert call(base + path)[0] == 404
    status, job = upload(base, clips["short"], mode="realtime")
    assert status == 201, job
    assert wait_done(base, job["id"])["state"] == "done"
    folder = Path(frontend.extra_env["SD__VIDEO__JOBS_DIR"]) / job["id"]
    assert (folder / "result.mp4").is_file()
    deadline = time.monotonic() + TTL_S + 10
    while call(f"{base}/api/video/jobs/{job['id']}")[0] == 200:
        assert time.monotonic() < deadline, "the ended job was not cleaned up"
        time.sleep(0.5)
    assert not folder.exists()
