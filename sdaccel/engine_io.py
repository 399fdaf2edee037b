"""The tensors each engine graph takes and gives, with symbolic axes the export and the plan fill in.

One declaration, so the ONNX export, the optimization profiles and the tests agree on names and
layouts (`B` batch, `H`x`W` image pixels, `h`x`w` = H/8 x W/8 latent, `C` latent channels,
`L` text tokens, `D` text embedding width):

    unet           sample [B,C,h,w], timestep [B] float32, encoder_hidden_states [B,L,D] -> noise_pred [B,C,h,w]
    vae_encoder    images [B,3,H,W] in [-1,1] -> latent_parameters [B,2C,h,w]: mean and log-variance of the
                   AutoencoderKL's latent distribution (before scaling_factor), so the runtime samples it with
                   the stream's own generator exactly as the PyTorch path does
    vae_decoder    latents [B,C,h,w] (already divided by scaling_factor) -> images [B,3,H,W] in [-1,1]
    taesd_encoder  images [B,3,H,W] -> latents [B,C,h,w]    (AutoencoderTiny, deterministic)
    taesd_decoder  latents [B,C,h,w] -> images [B,3,H,W]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sdbackend.engine_manifest import EngineKind, ModelDims, Shape

Axis = int | str
"""An int is fixed, a letter is filled in by `resolve_shape`."""
BATCH_AXIS = "B"
SPATIAL_AXES = ("H", "W", "h", "w")


@dataclass(frozen=True)
class EngineIO:
    inputs: tuple[tuple[str, tuple[Axis, ...]], ...]
    outputs: tuple[tuple[str, tuple[Axis, ...]], ...]

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.outputs]


_IMAGE: tuple[Axis, ...] = ("B", 3, "H", "W")
_LATENT: tuple[Axis, ...] = ("B", "C", "h", "w")
ENGINE_IO: Mapping[EngineKind, EngineIO] = {
    "unet": EngineIO(
        inputs=(("sample", _LATENT), ("timestep", ("B",)), ("encoder_hidden_states", ("B", "L", "D"))),
        outputs=(("noise_pred", _LATENT),),
    ),
    "vae_encoder": EngineIO(inputs=(("images", _IMAGE),), outputs=(("latent_parameters", ("B", "2C", "h", "w")),)),
    "vae_decoder": EngineIO(inputs=(("latents", _LATENT),), outputs=(("images", _IMAGE),)),
    "taesd_encoder": EngineIO(inputs=(("images", _IMAGE),), outputs=(("latents", _LATENT),)),
    "taesd_decoder": EngineIO(inputs=(("latents", _LATENT),), outputs=(("images", _IMAGE),)),
}


def resolve_shape(axes: Sequence[Axis], dims: ModelDims, batch: int, height: int, width: int) -> Shape:
    scale = dims.vae_scale_factor
    values: dict[str, int] = {
        "B": batch,
        "H": height,
        "W": width,
        "h": height // scale,
        "w": width // scale,
        "C": dims.latent_channels,
        "2C": 2 * dims.latent_channels,
        "L": dims.text_length,
        "D": dims.embedding_dim,
    }
    return tuple(axis if isinstance(axis, int) else values[axis] for axis in axes)


def dynamic_axes(kind: EngineKind) -> dict[str, dict[int, str]]:
    """ONNX dynamic axes of every input and output: batch and the spatial sides."""
    io = ENGINE_IO[kind]
    return {
        name: {i: str(axis) for i, axis in enumerate(axes) if axis == BATCH_AXIS or axis in SPATIAL_AXES}
        for name, axes in (*io.inputs, *io.outputs)
    }
