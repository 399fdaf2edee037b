"""The video page in headless Chromium: upload a clip, watch it progress, reload mid-job, download the result."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sdtools.video_clip import write_clip
from tests.browser.chromium import screenshot
from tests.browser.servers import OwnFrontend
from tests.servers import TritonServer, free_port
from tests.video_files import audio_packets, decoded_frames

pytestmark = pytest.mark.browser

TOKEN = "video-page-test-token-0123456789"
FRAMES = 144


@pytest.fixture(scope="module")
def video_frontend(triton_server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnFrontend]:
    env = {
        "SD__VIDEO__JOBS_DIR": str(tmp_path_factory.mktemp("jobs")),
        "SD__SERVER__SECURITY__ACCESS_TOKEN": TOKEN,
    }
    server = OwnFrontend(triton_server, free_port(), extra_env=env)
    server.start()
    yield server
    server.stop()


def frames_done(page: Page) -> int:
    text = page.locator("#stat-frames").text_content() or ""
    match = re.match(r"(\d+) / (\d+)", text)
    return int(match.group(1)) if match else 0


def test_upload_progress_reload_and_download(page: Page, video_frontend: OwnFrontend, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "shapes.mp4", frames=FRAMES, fps=12)
    page.goto(f"{video_frontend.base_url}/video?token={TOKEN}")
    expect(page.locator("#limits")).to_contain_text("MB")
    page.set_input_files("#clip", str(clip))
    page.select_option("#mode", "canvas")
    page.fill("#prompt", "a green circle and a red square on a white background")
    page.click("#start")

    expect(page).to_have_url(re.compile(r"[?&]job=[A-Za-z0-9_-]{22}"), timeout=30_000)
    job_url = page.url
    expect(page.locator("#preview")).to_be_visible(timeout=60_000)
    page.wait_for_function("() => /^([1-9]\\d*) \\//.test(document.querySelector('#stat-frames').textContent)")
    assert 0 < frames_done(page) < FRAMES, "the job ended before the page could see it running"
    expect(page.locator("#stat-state")).to_have_text("running")
    screenshot(page, "video-running")

    page.reload()  # the job id in the URL finds the same job
    assert page.url == job_url
    expect(page.locator("#stat-state")).to_have_text(re.compile("running|done"), timeout=30_000)
    before = frames_done(page)
    page.wait_for_function(f"() => parseInt(document.querySelector('#stat-frames').textContent) > {before}")
    expect(page.locator("#preview")).to_be_visible()

    download = page.locator("#download")
    expect(download).to_be_visible(timeout=300_000)
    expect(page.locator("#stat-frames")).to_have_text(f"{FRAMES} / {FRAMES}")
    screenshot(page, "video-done")
    with page.expect_download() as info:
        download.click()
    result = tmp_path / "result.mp4"
    info.value.save_as(result)
    assert len(decoded_frames(result)) == FRAMES
    assert audio_packets(result) == audio_packets(clip)


def test_a_file_that_is_no_video_gets_its_reason_on_the_page(
    page: Page, video_frontend: OwnFrontend, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video")
    page.goto(f"{video_frontend.base_url}/video?token={TOKEN}")
    page.set_input_files("#clip", str(fake))
    page.click("#start")
    expect(page.locator(".notice-error")).to_contain_text("not a video", timeout=30_000)
    expect(page.locator("#badge")).to_have_attribute("data-state", "error")


def test_an_unknown_job_in_the_url_says_so(page: Page, video_frontend: OwnFrontend) -> None:
    page.goto(f"{video_frontend.base_url}/video?token={TOKEN}&job={'A' * 22}")
    expect(page.locator(".notice-error")).to_contain_text("no such video job", timeout=30_000)
