"""The PyTorch GPU path leaves a CPU pipeline as it is, and the CUDA-graph UNet behaves like the UNet."""

from __future__ import annotations

from pathlib import Path

import torch

from sdbackend.random_model import TINY, build_pipeline_on
from sdbackend.torch_speedups import CudaGraphUNet, SpeedupOptions, speed_up


def test_speed_ups_change_nothing_on_the_cpu(tmp_path: Path) -> None:
    pipe, tiny = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path)
    unet = pipe.unet
    assert speed_up(pipe, SpeedupOptions(cuda_graphs=True, compile="default"), extra_vaes=[tiny]) == []
    assert pipe.unet is unet


@torch.inference_mode()
def test_cuda_graph_unet_answers_like_the_unet_where_it_cannot_capture(tmp_path: Path) -> None:
    pipe, _ = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path)
    graphed = CudaGraphUNet(pipe.unet)
    assert graphed.config is pipe.unet.config and graphed.dtype == torch.float32
    sample = torch.randn(2, 4, 8, 8)
    states = torch.randn(2, 77, TINY.unet["cross_attention_dim"])
    expected = pipe.unet(sample, 300, encoder_hidden_states=states, return_dict=False)[0]
    assert torch.equal(graphed(sample, 300, encoder_hidden_states=states, return_dict=False)[0], expected)
    assert torch.equal(graphed(sample, torch.tensor(300), encoder_hidden_states=states).sample, expected)
    assert graphed.captured == {}
