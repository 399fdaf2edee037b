"""The two scenarios over one ImageGenerator: the only place where realtime and canvas differ in code.

Realtime keeps a prepared stream per Triton sequence (its stream-batch latents, noise and
embeddings); canvas prepares a stream per request and runs every step on that request's image.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from streamdiffusion import StreamDiffusion

from sdbackend.errors import RequestError
from sdbackend.generation import ImageGenerator
from sdbackend.images import encode_jpeg
from sdbackend.loading import load_pipeline, resolve_device_dtype
from sdbackend.requests import GenerationParams, GenerationRequest
from sdbackend.sequences import SequenceStore
from sdconfig import Mode, Settings

log = logging.getLogger(__name__)


@dataclass
class SequenceState:
    stream: StreamDiffusion
    params: GenerationParams


class RealtimeService:
    """Stateful: one stream per sequence, created on START, freed on END or when idle."""

    def __init__(self, generator: ImageGenerator, store: SequenceStore[SequenceState]) -> None:
        self.generator = generator
        self.sequences = store

    def handle(self, sequence_id: int, start: bool, end: bool, request: GenerationRequest) -> bytes | None:
        """Process one frame of a sequence; None for an END request that carries no image."""
        try:
            if request.image is None:
                return None
            state = self._state_for(sequence_id, start, request.params)
            frame = self.generator.run(state.stream, request.image)
            return encode_jpeg(frame, request.jpeg_quality)
        finally:
            if end:
                self.sequences.end(sequence_id)

    def _state_for(self, sequence_id: int, start: bool, params: GenerationParams) -> SequenceState:
        state = None if start else self.sequences.get(sequence_id)
        if state is None and not start:
            raise RequestError(
                f"sequence {sequence_id} has no state here: it ended or was idle too long; "
                "start it again with the START flag"
            )
        if state is None or state.params.t_index_list != params.t_index_list or state.params.seed != params.seed:
            state = SequenceState(self.generator.new_stream(params, denoising_batch=True), params)
            self.sequences.start(sequence_id, state)
        elif state.params != params:
            self.generator.restyle(state.stream, params)
            state.params = params
        return state


class CanvasService:
    """Stateless: every request runs all of its steps on its own image, seeded, so it is reproducible."""

    def __init__(self, generator: ImageGenerator, cached_streams: int = 4) -> None:
        self.generator = generator
        self._streams: OrderedDict[tuple[int, ...], StreamDiffusion] = OrderedDict()
        self._capacity = cached_streams

    def handle(self, request: GenerationRequest) -> bytes:
        if request.image is None:
            raise RequestError("IMAGE is empty: send a JPEG, PNG or WebP image")
        params = request.params
        stream = self._stream_for(params)
        frame = self.generator.run_seeded(stream, request.image, params.seed)
        return encode_jpeg(frame, request.jpeg_quality)

    def _stream_for(self, params: GenerationParams) -> StreamDiffusion:
        """Streams are kept per step list (their scheduler tables); embeddings and noise are redone per request."""
        key = params.t_index_list
        stream = self._streams.pop(key, None)
        if stream is None:
            stream = self.generator.new_stream(params, denoising_batch=False)
        else:
            self.generator.prepare(stream, params)
        self._streams[key] = stream
        while len(self._streams) > self._capacity:
            self._streams.popitem(last=False)
        return stream


def build_service(settings: Settings, config_file: Path, mode: Mode) -> RealtimeService | CanvasService:
    """Load the variant's pipeline (PyTorch, or TensorRT engines where configured) and wrap it."""
    variant = settings.variant(mode)
    device, dtype = resolve_device_dtype(settings.model)
    pipe = load_pipeline(settings, config_file, variant.use_tiny_vae, device, dtype)
    if settings.model.acceleration == "tensorrt":
        from sdbackend.tensorrt_runner import apply_tensorrt

        apply_tensorrt(pipe, settings, config_file, mode)
    generator = ImageGenerator(pipe, settings, variant)
    if mode == "canvas":
        return CanvasService(generator)
    store: SequenceStore[SequenceState] = SequenceStore(variant.sequence_idle_timeout_s, variant.max_sequences)
    return RealtimeService(generator, store)
