"""On the CPU the PyTorch speed-ups only change memory layout (same answers), and the CUDA-graph UNet
behaves like the UNet."""

from __future__ import annotations

from pathlib import Path

import torch

from sdbackend.torch_speedups import CudaGraphUNet, SpeedupOptions, speed_up
from sdmodels.builders import TINY, build_pipeline_on


def _conv_weights_channels_last(module: torch.nn.Module) -> list[bool]:
    return [
        layer.weight.is_contiguous(memory_format=torch.channels_last)
        for layer in module.modules()
        if isinstance(layer, torch.nn.Conv2d) and layer.kernel_size != (1, 1)
    ]


@torch.inference_mode()
def test_on_the_cpu_only_channels_last_applies_and_answers_stay_the_same(tmp_path: Path) -> None:
    pipe, tiny = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path)
    unet = pipe.unet
    sample = torch.randn(2, 4, 8, 8)
    states = torch.randn(2, 77, TINY.unet["cross_attention_dim"])
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    before = (
        pipe.unet(sample, 300, encoder_hidden_states=states).sample,
        tiny.decode(tiny.encode(image).latents).sample,
    )
    assert not any(_conv_weights_channels_last(unet))

    applied = speed_up(pipe, SpeedupOptions(cuda_graphs=True, compile="default"), extra_vaes=[tiny])

    assert applied == ["channels_last"], "CUDA graphs and compile are CUDA matters"
    assert pipe.unet is unet
    for module in (pipe.unet, pipe.vae, tiny):
        assert all(_conv_weights_channels_last(module)), type(module).__name__
    after = (
        pipe.unet(sample, 300, encoder_hidden_states=states).sample,
        tiny.decode(tiny.encode(image).latents).sample,
    )
    for old, new in zip(before, after, strict=True):
        torch.testing.assert_close(new, old, rtol=1e-4, atol=1e-5)


def test_channels_last_can_be_left_off_on_the_cpu(tmp_path: Path) -> None:
    pipe, _ = build_pipeline_on(TINY, "cpu", torch.float32, tmp_path)
    assert speed_up(pipe, SpeedupOptions(channels_last=False)) == []
    assert not any(_conv_weights_channels_last(pipe.unet))


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
