"""The tensors both models take and give: one declaration, imported by the model side and the frontends.

Every input but IMAGE is optional; a missing one takes the default that the model facts show.
Both models batch (max_batch_size > 0), so each tensor has a leading batch dimension of 1.
PROMPT and SEED stay for clients of one prompt and one seed; PROMPT_LIST with PROMPT_WEIGHTS (and
SEED_LIST with SEED_WEIGHTS) blend several instead, and where given they replace PROMPT (SEED).
Realtime requests belong to a Triton sequence (correlation id, START/END flags); a request
flagged END whose IMAGE is empty ends the sequence without running the model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    """Triton's datatype name (BYTES, INT64, INT32, FP32)."""
    dims: tuple[int, ...]
    """Per-request shape, without the batch dimension; -1 is variable."""
    meaning: str


IMAGE_INPUT = "IMAGE"
JPEG_QUALITY_INPUT = "JPEG_QUALITY"
IMAGE_OUTPUT = "IMAGE"

#: parameter name on the wire (JSON) -> its tensor
PARAMETER_TENSORS: dict[str, TensorSpec] = {
    "prompt": TensorSpec("PROMPT", "BYTES", (1,), "UTF-8"),
    "negative_prompt": TensorSpec("NEGATIVE_PROMPT", "BYTES", (1,), "UTF-8; used where cfg_type is full or initialize"),
    "seed": TensorSpec("SEED", "INT64", (1,), "0 to 2^31-1"),
    "guidance_scale": TensorSpec("GUIDANCE_SCALE", "FP32", (1,), "ignored where cfg_type is none"),
    "delta": TensorSpec("DELTA", "FP32", (1,), "weight of the self-guidance noise"),
    "t_index_list": TensorSpec("T_INDEX_LIST", "INT32", (-1,), "strictly increasing indices into the timesteps"),
    "prompt_interpolation_method": TensorSpec(
        "PROMPT_INTERPOLATION", "BYTES", (1,), "linear or slerp: how prompt embeddings are blended"
    ),
    "prompt_transition_frames": TensorSpec(
        "PROMPT_TRANSITION_FRAMES", "INT32", (1,), "realtime: frames a prompt change takes; 0 jumps"
    ),
}


@dataclass(frozen=True)
class BlendTensors:
    """A weighted list on the wire: its values and their weights, two tensors of equal length."""

    values: TensorSpec
    weights: TensorSpec


#: blend parameter on the wire (JSON, a list of [value, weight] pairs) -> its two tensors
BLEND_TENSORS: dict[str, BlendTensors] = {
    "prompt_list": BlendTensors(
        TensorSpec("PROMPT_LIST", "BYTES", (-1,), "UTF-8 prompts blended; replaces PROMPT"),
        TensorSpec("PROMPT_WEIGHTS", "FP32", (-1,), "one weight per PROMPT_LIST entry, normalised by the model"),
    ),
    "seed_list": BlendTensors(
        TensorSpec("SEED_LIST", "INT64", (-1,), "seeds whose noise is blended (slerp); replaces SEED"),
        TensorSpec("SEED_WEIGHTS", "FP32", (-1,), "one weight per SEED_LIST entry, normalised by the model"),
    ),
}

INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec(IMAGE_INPUT, "BYTES", (1,), "JPEG, PNG or WebP of exactly width x height"),
    *PARAMETER_TENSORS.values(),
    *(spec for blend in BLEND_TENSORS.values() for spec in (blend.values, blend.weights)),
    TensorSpec(JPEG_QUALITY_INPUT, "INT32", (1,), "1 to 100, of the returned JPEG"),
)
OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec(IMAGE_OUTPUT, "BYTES", (1,), "JPEG of width x height"),)

MAX_DENOISING_STEPS = 8
SEED_MAX = 2**31 - 1
INTERPOLATION_METHODS = ("linear", "slerp")
