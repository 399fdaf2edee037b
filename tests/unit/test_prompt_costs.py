"""Text-encoder calls and transitions in the services themselves, with the demo model on the CPU (no Triton):
a blend of N new prompts costs N calls once, an unchanged frame none, and a transition keeps the stream."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sdbackend.requests import CheckedRequest, GenerationParams, GenerationRequest, RequestLimits
from sdbackend.service import CanvasService, RealtimeService, build_service
from sdconfig import load_settings

CONFIG = Path(__file__).resolve().parents[1] / "config.test.yaml"
IMAGE = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def settings():
    return load_settings(CONFIG)


@pytest.fixture(scope="module")
def realtime(settings) -> RealtimeService:
    service = build_service(settings, CONFIG, "realtime")
    assert isinstance(service, RealtimeService)
    return service


def defaults(settings, mode: str) -> GenerationParams:
    return RequestLimits.from_settings(settings, mode, 77).defaults


class Sequence:
    def __init__(self, service: RealtimeService, sequence_id: int) -> None:
        self.service, self.id, self.started = service, sequence_id, False

    def frame(self, params: GenerationParams, transition: int = 0) -> int:
        """Run one frame; the text-encoder calls it made."""
        before = self.service.generator.prompts.encoder_calls
        request = GenerationRequest(IMAGE, params, jpeg_quality=80, transition_frames=transition)
        (outcome,) = self.service.handle([CheckedRequest(self.id, not self.started, False, request)])
        assert isinstance(outcome, bytes), outcome
        self.started = True
        return self.service.generator.prompts.encoder_calls - before

    @property
    def state(self):
        return self.service.sequences.get(self.id)


def test_realtime_encodes_each_new_prompt_once_and_never_for_an_unchanged_frame(realtime, settings) -> None:
    base = replace(defaults(settings, "realtime"), prompts=(("a green star on a white background", 1.0),))
    sequence = Sequence(realtime, 101)
    first = sequence.frame(base)
    assert first in (1, 2)  # the prompt, and the negative prompt where no other test encoded it yet
    assert [sequence.frame(base) for _ in range(4)] == [0, 0, 0, 0]
    blended = replace(base, prompts=(("a purple line on a white background", 0.5), ("an orange square", 0.5)))
    assert sequence.frame(blended) == 2
    assert [sequence.frame(blended) for _ in range(4)] == [0, 0, 0, 0]
    reweighted = replace(blended, prompts=(("a purple line on a white background", 0.2), ("an orange square", 0.8)))
    assert sequence.frame(reweighted) == 0  # new weights, known prompts: no encoder call
    assert sequence.frame(replace(reweighted, interpolation="slerp")) == 0
    assert sequence.frame(base) == 0  # back to a cached prompt


def test_a_transition_keeps_the_stream_and_lands_on_the_new_embeddings(realtime, settings) -> None:
    old = replace(defaults(settings, "realtime"), prompts=(("a red circle on a white background", 1.0),))
    new = replace(old, prompts=(("a blue circle on a white background", 1.0),))
    reference = Sequence(realtime, 202)
    reference.frame(new)
    target = reference.state.stream.prompt_embeds.clone()

    sequence = Sequence(realtime, 203)
    for _ in range(3):
        sequence.frame(old)
    stream, start = sequence.state.stream, sequence.state.stream.prompt_embeds.clone()
    in_flight = sequence.state.stream.x_t_latent_buffer
    assert in_flight is not None and in_flight.abs().sum() > 0
    distances = []
    for k in range(1, 5):
        sequence.frame(new, transition=4)
        assert sequence.state.stream is stream  # no new stream: the stream batch goes on
        embeds = sequence.state.stream.prompt_embeds
        distances.append(float((embeds - target).norm()))
        assert (sequence.state.transition is None) == (k == 4)
    assert torch.equal(sequence.state.stream.prompt_embeds, target)
    assert distances == sorted(distances, reverse=True) and distances[-1] == 0.0 and distances[0] > 0
    assert float((start - target).norm()) > distances[0]
    sequence.frame(new)
    assert torch.equal(sequence.state.stream.prompt_embeds, target)


def test_canvas_encodes_a_prompt_once_however_many_drawings(settings) -> None:
    canvas = build_service(settings, CONFIG, "canvas")
    assert isinstance(canvas, CanvasService)
    params = replace(defaults(settings, "canvas"), prompts=(("a yellow triangle", 0.5), ("a black line", 0.5)))
    calls = []
    for _ in range(3):
        before = canvas.generator.prompts.encoder_calls
        (outcome,) = canvas.handle([CheckedRequest(0, False, False, GenerationRequest(IMAGE, params, 90))])
        assert isinstance(outcome, bytes)
        calls.append(canvas.generator.prompts.encoder_calls - before)
    assert calls == [3, 0, 0]  # two prompts and the negative prompt, once
