"""The two scenarios over one ImageGenerator, behind one interface: the only place where they differ in code.

Realtime keeps a prepared stream per Triton sequence (its stream-batch latents, noise and
embeddings); canvas prepares a pooled stream per request and runs every step on that request's image.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from streamdiffusion import StreamDiffusion

from sdbackend.blending import PromptTransition
from sdbackend.errors import RequestError
from sdbackend.generation import ImageGenerator
from sdbackend.image_codec import encode_jpeg
from sdbackend.loading import load_pipeline, resolve_device_dtype
from sdbackend.requests import CheckedRequest, GenerationParams, GenerationRequest
from sdbackend.sequence_store import SequenceStore
from sdbackend.torch_speedups import SpeedupOptions, speed_up
from sdconfig import Mode, Settings

log = logging.getLogger(__name__)


@dataclass
class SequenceState:
    stream: StreamDiffusion
    params: GenerationParams
    transition: PromptTransition | None = None
    """A prompt change still arriving: each frame of the sequence takes its next step."""

    def advance_transition(self) -> None:
        if self.transition is None:
            return
        self.stream.prompt_embeds = self.transition.step()
        if self.transition.finished:
            self.transition = None


Outcome = bytes | None | Exception
"""An encoded JPEG, None (an END without image) or the error, for each request in order."""


class Service(Protocol):
    """What model.py drives, whichever the variant."""

    generator: ImageGenerator

    def handle(self, requests: list[CheckedRequest]) -> list[Outcome]:
        """One outcome per request; a request whose check failed keeps its error."""
        ...

    def expire_idle(self) -> list[int]:
        """Free state Triton has dropped without telling the model; the ids freed."""
        ...

    def live_sequences(self) -> int: ...


class RealtimeService:
    """Stateful: one stream per sequence, created on START, freed on END or when idle.

    Frames of several sequences that arrive in one Triton batch share one UNet call where
    `batch_across_sessions` is on (by default on a GPU); each stream's own arithmetic is unchanged.
    """

    def __init__(self, generator: ImageGenerator, store: SequenceStore[SequenceState], batch: bool) -> None:
        self.generator = generator
        self.sequences = store
        self._batch = batch

    def handle(self, requests: list[CheckedRequest]) -> list[Outcome]:
        """Frames of several sequences at once; a frame flagged END ends its sequence, even a bad one."""
        outcomes: list[Outcome] = [item.checked if not item.ok else None for item in requests]
        work: list[tuple[int, SequenceState, np.ndarray]] = []
        for i, item in enumerate(requests):
            if not item.ok or item.request.image is None:
                continue
            try:
                state = self._state_for(item.correlation_id, item.start, item.request)
                work.append((i, state, item.request.image))
            except RequestError as exc:
                outcomes[i] = exc
        try:
            for (i, _, _), picture in zip(work, self._run(work), strict=True):
                quality = requests[i].request.jpeg_quality
                outcomes[i] = picture if isinstance(picture, Exception) else encode_jpeg(picture, quality)
        finally:
            for item in requests:
                if item.end:
                    self.sequences.end(item.correlation_id)
        return outcomes

    def expire_idle(self) -> list[int]:
        return self.sequences.expire()

    def live_sequences(self) -> int:
        return len(self.sequences)

    def _run(self, work: list[tuple[int, SequenceState, np.ndarray]]) -> list[np.ndarray | Exception]:
        if not self._batch or len(work) < 2:
            return [self._run_one(state.stream, image) for _, state, image in work]
        try:
            return list(
                self.generator.run_group([state.stream for _, state, _ in work], [image for _, _, image in work])
            )
        except Exception as exc:
            log.exception("batched step of %d sequences failed", len(work))
            return [exc] * len(work)

    def _run_one(self, stream: StreamDiffusion, image: np.ndarray) -> np.ndarray | Exception:
        try:
            return self.generator.run(stream, image)
        except Exception as exc:
            log.exception("frame failed")
            return exc

    def _state_for(self, sequence_id: int, start: bool, request: GenerationRequest) -> SequenceState:
        """The sequence's stream, made ready for this frame: a new stream where its steps or seeds changed,
        a restyle (possibly starting a transition) where only prompt or guidance did."""
        params = request.params
        state = None if start else self.sequences.get(sequence_id)
        if state is None and not start:
            raise RequestError(
                f"sequence {sequence_id} has no state here: it ended or was idle too long; "
                "start it again with the START flag"
            )
        if state is None or state.params.t_index_list != params.t_index_list or state.params.seeds != params.seeds:
            state = SequenceState(self.generator.new_stream(params, denoising_batch=True), params)
            self.sequences.start(sequence_id, state)
        elif state.params != params:
            state.transition = self.generator.restyle(state.stream, params, request.transition_frames)
            state.params = params
            if state.transition is not None and state.transition.finished:
                state.transition = None
        else:
            state.advance_transition()
        return state


class CanvasService:
    """Stateless: every request runs all of its steps on its own image, seeded, so it is reproducible.

    Drawings of one Triton batch with the same step list share one UNet call per step where
    `batch_across_sessions` is on; each keeps its own prompt, guidance and seeded noise.
    """

    def __init__(self, generator: ImageGenerator, batch: bool, pooled_streams: int = 8) -> None:
        self.generator = generator
        self._batch = batch
        self._pool: OrderedDict[tuple[int, ...], list[StreamDiffusion]] = OrderedDict()
        self._capacity = pooled_streams

    def handle(self, requests: list[CheckedRequest]) -> list[Outcome]:
        """Drawings grouped by step list; a failing group answers each of its drawings with the error."""
        outcomes: list[Outcome] = [item.checked if not item.ok else None for item in requests]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(requests):
            if not item.ok:
                continue
            if item.request.image is None:
                outcomes[i] = RequestError("IMAGE is empty: send a JPEG, PNG or WebP image")
            else:
                groups.setdefault(item.request.params.t_index_list, []).append(i)
        for places in groups.values():
            chunks = [places] if self._batch else [[i] for i in places]
            for chunk in chunks:
                for i, outcome in zip(chunk, self._draw([requests[i].request for i in chunk]), strict=True):
                    outcomes[i] = outcome
        return outcomes

    def expire_idle(self) -> list[int]:
        return []  # stateless

    def live_sequences(self) -> int:
        return 0

    def _draw(self, requests: list[GenerationRequest]) -> list[Outcome]:
        key = requests[0].params.t_index_list
        streams: list[StreamDiffusion] = []
        try:
            for request in requests:
                streams.append(self._stream_for(key, request.params))
            pictures = self.generator.run_drawings(
                streams, [request.image for request in requests], [request.params.seeds for request in requests]
            )
        except Exception as exc:
            log.exception("%d drawing(s) failed", len(requests))
            return [exc] * len(requests)
        finally:
            self._give_back(key, streams)
        return [encode_jpeg(picture, request.jpeg_quality) for picture, request in zip(pictures, requests, strict=True)]

    def _stream_for(self, key: tuple[int, ...], params: GenerationParams) -> StreamDiffusion:
        """A stream with the step list's scheduler tables from the pool, or a new one; prepared for `params`."""
        idle = self._pool.get(key)
        if idle:
            stream = idle.pop()
            self.generator.prepare(stream, params)
            return stream
        return self.generator.new_stream(params, denoising_batch=False)

    def _give_back(self, key: tuple[int, ...], streams: list[StreamDiffusion]) -> None:
        """Keep at most `pooled_streams` idle streams, of the step lists used last."""
        self._pool.setdefault(key, []).extend(streams)
        self._pool.move_to_end(key)
        while sum(len(idle) for idle in self._pool.values()) > self._capacity:
            oldest = next(iter(self._pool))
            self._pool[oldest].pop(0)
            if not self._pool[oldest]:
                del self._pool[oldest]


def build_service(settings: Settings, config_file: Path, mode: Mode) -> Service:
    """Load the variant's pipeline (PyTorch, or TensorRT engines where configured) and wrap it."""
    variant = settings.variant(mode)
    device, dtype = resolve_device_dtype(settings.model)
    pipe = load_pipeline(settings, config_file, variant.use_tiny_vae, device, dtype)
    if settings.model.acceleration == "tensorrt":
        from sdbackend.tensorrt_runner import apply_tensorrt

        apply_tensorrt(pipe, settings, config_file, mode)
    else:
        speed_up(pipe, SpeedupOptions(compile=settings.model.torch_compile, cuda_graphs=settings.model.cuda_graphs))
    generator = ImageGenerator(pipe, settings, variant)
    batch = variant.batches_across_sessions(device.type)
    if mode == "canvas":
        return CanvasService(generator, batch, pooled_streams=variant.max_batch)
    realtime = settings.realtime.pipeline
    store: SequenceStore[SequenceState] = SequenceStore(realtime.sequence_idle_timeout_s, realtime.max_sequences)
    return RealtimeService(generator, store, batch=batch)
