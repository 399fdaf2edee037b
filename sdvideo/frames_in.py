"""What a restyle reads: the frames of a video file, an image folder or a glob, cropped to the model's size.

Frames are centre-cropped to the model's aspect and resized to its width x height, so the model
sees the whole middle of the picture undistorted. Every failure names the file and the reason.
"""

from __future__ import annotations

import glob
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_IMAGE_FPS = Fraction(24)
MIN_CROP_SIDE = 16
"""A crop narrower than this (pixels) is refused rather than blown up into mush."""


class InputError(Exception):
    """An input that cannot be restyled; the message names the file and the reason."""


@dataclass(frozen=True)
class InputInfo:
    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    has_audio: bool
    is_video: bool


def crop_box(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int, int, int]:
    """The centred box of the target's aspect inside a width x height frame."""
    if width * target_h > height * target_w:  # wider than the target: cut the sides
        crop_w, crop_h = height * target_w // target_h, height
    else:
        crop_w, crop_h = width, width * target_h // target_w
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def check_croppable(name: str, width: int, height: int, target_w: int, target_h: int) -> None:
    left, top, right, bottom = crop_box(width, height, target_w, target_h)
    if min(right - left, bottom - top) < MIN_CROP_SIDE:
        raise InputError(
            f"{name}: a {width}x{height} frame cannot be cropped to the model's {target_w}x{target_h}: "
            f"the crop would be {right - left}x{bottom - top}, under {MIN_CROP_SIDE} pixels a side"
        )


def fit(image: Image.Image, target_w: int, target_h: int) -> np.ndarray:
    """The frame centre-cropped to the target's aspect and resized to it, as HWC uint8 RGB."""
    box = crop_box(image.width, image.height, target_w, target_h)
    return np.asarray(image.convert("RGB").resize((target_w, target_h), Image.Resampling.LANCZOS, box=box))


class FrameSource:
    """The frames of one input in order, each fitted to the model's size."""

    def __init__(self, spec: str, target_w: int, target_h: int) -> None:
        self.spec = spec
        self.target = (target_w, target_h)
        self._images = image_files(spec)
        self.info = self._probe_images() if self._images is not None else probe_video(Path(spec))
        check_croppable(spec, self.info.width, self.info.height, target_w, target_h)

    def _probe_images(self) -> InputInfo:
        assert self._images is not None
        first = self._images[0]
        with _open_image(first, 0) as image:
            width, height = image.size
        return InputInfo(Path(self.spec), len(self._images), DEFAULT_IMAGE_FPS, width, height, False, False)

    def frames(self) -> Iterator[np.ndarray]:
        if self._images is not None:
            for index, path in enumerate(self._images):
                with _open_image(path, index) as image:
                    check_croppable(str(path), image.width, image.height, *self.target)
                    yield fit(image, *self.target)
            return
        yield from _video_frames(self.info.path, self.target)


def image_files(spec: str) -> list[Path] | None:
    """The images of a folder or glob in name order; None when `spec` is a single (video) file."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"{spec}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())  # noqa: PTH207 (a user's pattern, any root)
        if not files:
            raise InputError(f"{spec}: no file matches the pattern")
        return files
    if not path.exists():
        raise InputError(f"{spec}: no such file or folder")
    return None


def _open_image(path: Path, index: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(path.read_bytes()))
        image.load()
    except UnidentifiedImageError:
        raise InputError(f"{path}: unreadable frame {index}: not an image in a known format") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable frame {index}: {exc}") from None
    return image


def probe_video(path: Path) -> InputInfo:
    """Frame count, rate and size of the first video stream; refuses files that are no video."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a video ({_reason(exc)})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream (streams: {_describe_streams(container)})")
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate
        if not fps or fps <= 0:
            raise InputError(f"{path}: the video stream declares no frame rate")
        frames = stream.frames or _count_frames(container, path)
        if frames <= 0:
            raise InputError(f"{path}: the video stream holds no frames")
        has_audio = bool(container.streams.audio)
        return InputInfo(path, frames, Fraction(fps), stream.width, stream.height, has_audio, True)


def _count_frames(container: av.container.InputContainer, path: Path) -> int:
    """Containers such as WebM do not store a frame count: count the video packets that hold a frame."""
    try:
        return sum(1 for packet in container.demux(video=0) if packet.size)
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: unreadable video stream ({_reason(exc)})") from None


def _video_frames(path: Path, target: tuple[int, int]) -> Iterator[np.ndarray]:
    index = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for packet in container.demux(stream):
                for frame in packet.decode():
                    yield fit(frame.to_image(), *target)
                    index += 1
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: unreadable frame {index} ({_reason(exc)})") from None


def _describe_streams(container: av.container.InputContainer) -> str:
    kinds = [stream.type for stream in container.streams]
    return ", ".join(kinds) if kinds else "none"


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)
