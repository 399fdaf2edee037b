"""What a restyle writes: a video at the input's frame rate with the input's audio copied untouched.

Frames arrive in order as the model's JPEGs and are encoded at the model's resolution (the
model's own pixels; scaling them up would add nothing but size). Audio packets are remuxed,
never re-encoded, interleaved with the video as it is written; a writer closed early (Ctrl-C)
keeps the audio up to the last frame, so the partial file plays in sync.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from sdvideo.frames_in import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
VIDEO_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9"}
WEBM_AUDIO = ("opus", "vorbis")
ENCODER_OPTIONS = {"libx264": {"crf": "16", "preset": "medium"}, "libvpx-vp9": {"crf": "20", "b": "0"}}


def is_video_output(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def jpeg_to_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class VideoWriter:
    """Encodes frames to `path` as they come; `close` finishes a playable file whatever the count."""

    def __init__(self, path: Path, fps: Fraction, size: tuple[int, int], audio_from: Path | None) -> None:
        suffix = path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise InputError(f"{path}: write a video as {', '.join(VIDEO_SUFFIXES)}, or give a folder for images")
        self.path = path
        self.fps = fps
        self.frames = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._source = av.open(str(audio_from)) if audio_from is not None else None
        self._out = av.open(str(path), mode="w")
        codec = VIDEO_CODECS[suffix]
        self._video = self._out.add_stream(codec, rate=fps)
        self._video.width, self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = ENCODER_OPTIONS[codec]
        self._audio_in, self._audio_out, self._packets = self._audio_streams(suffix)
        self._pending: av.Packet | None = None

    def _audio_streams(self, suffix: str) -> tuple[av.AudioStream | None, av.AudioStream | None, Iterator[av.Packet]]:
        if self._source is None or not self._source.streams.audio:
            return None, None, iter(())
        audio = self._source.streams.audio[0]
        name = audio.codec_context.name
        if suffix == ".webm" and name not in WEBM_AUDIO:
            self.abort()
            raise InputError(
                f"{self.path}: a WebM file cannot carry the input's {name} audio untouched; write .mp4, .mov or .mkv"
            )
        return audio, self._out.add_stream_from_template(audio), self._source.demux(audio)

    def write(self, jpeg: bytes) -> None:
        frame = av.VideoFrame.from_ndarray(jpeg_to_rgb(jpeg), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1
        self._copy_audio(until=self.frames / self.fps)

    def _copy_audio(self, until: Fraction | None) -> None:
        """Audio packets that start before `until` seconds (all of them when None)."""
        if self._audio_in is None or self._audio_out is None:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None:  # the demuxer's flush packet
                continue
            start = packet.pts * packet.time_base if packet.pts is not None else 0
            if until is not None and start >= until:
                self._pending = packet
                return
            packet.stream = self._audio_out
            self._out.mux(packet)

    def close(self, complete: bool) -> None:
        """Flush the encoder; a complete file gets all the audio, a partial one the audio of its frames."""
        for packet in self._video.encode():
            self._out.mux(packet)
        self._copy_audio(until=None if complete else self.frames / self.fps)
        self._out.close()
        if self._source is not None:
            self._source.close()

    def abort(self) -> None:
        self._out.close()
        if self._source is not None:
            self._source.close()
