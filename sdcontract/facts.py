"""The model facts a client needs, computed from the settings in one place.

The launcher writes these facts into each model's config as the `model_facts` parameter, so a
client reads them from Triton (`get_model_config`) instead of keeping a copy; the model checks
its requests against the same facts. No torch here: the launcher imports this module.

The tensors themselves are declared in sdcontract.tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sdconfig import Mode, Settings
from sdcontract.tensors import (
    BLEND_TENSORS,
    INTERPOLATION_METHODS,
    MAX_DENOISING_STEPS,
    PARAMETER_TENSORS,
    SEED_MAX,
)

DEFAULT_MAX_PROMPT_TOKENS = 77


def max_prompt_tokens(model_path: str) -> int:
    """The tokenizer's own limit where the model is a local folder, CLIP's 77 otherwise."""
    config = Path(model_path) / "tokenizer" / "tokenizer_config.json"
    try:
        value = int(json.loads(config.read_text())["model_max_length"])
    except (OSError, KeyError, ValueError, TypeError):
        return DEFAULT_MAX_PROMPT_TOKENS
    return value if 0 < value <= 4096 else DEFAULT_MAX_PROMPT_TOKENS


PAGE_CONTENT = (
    "<p>StreamDiffusion served by Triton: your camera restyled by the prompt. "
    "Every drawing on <a href='/canvas'>/canvas</a>.</p>"
)


def _demo_field(spec: dict[str, Any], name: str, field: str, hide: bool = False, step: float | None = None) -> None:
    """The keys StreamDiffusion's demo frontends build their controls from, beside the JSON-schema ones."""
    spec.update(field=field, id=name, hide=hide)
    if "minimum" in spec:
        spec.update(min=spec["minimum"], max=spec["maximum"])
    if step is not None:
        spec["step"] = step


def _size_property(title: str, size: int) -> dict[str, Any]:
    """Width or height: fixed by the model, declared so demo clients size their canvas and echo it."""
    return {
        "type": "integer",
        "title": title,
        "minimum": size,
        "maximum": size,
        "default": size,
        "description": "The model's resolution; any other value is refused.",
    }


def _blend_property(title: str, value: dict[str, Any], max_items: int, weight_max: float, what: str) -> dict[str, Any]:
    """A list of [value, weight] pairs; weights are normalised by the model, so only their ratios count."""
    return {
        "type": "array",
        "title": title,
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "prefixItems": [value, {"type": "number", "minimum": 0.0, "maximum": weight_max}],
        },
        "minItems": 0,
        "maxItems": max_items,
        "x-weights-positive": True,
        "default": [],
        "description": f"[{what}, weight] pairs blended in place of one; weights 0 to {weight_max}, "
        "normalised; an empty list blends nothing.",
    }


def blend_schema(settings: Settings, mode: Mode, prompt_tokens: int) -> dict[str, dict[str, Any]]:
    """The blend parameters: prompt and seed lists, how prompts mix and, where a stream lives on, how fast."""
    pipe, variant = settings.pipeline, settings.variant(mode)
    text = {"type": "string", "maxLength": settings.server.max_prompt_chars, "x-max-tokens": prompt_tokens}
    seed = {"type": "integer", "minimum": 0, "maximum": SEED_MAX}
    props = {
        "prompt_list": _blend_property("Prompt blend", text, pipe.max_blend_prompts, pipe.blend_weight_max, "prompt"),
        "seed_list": _blend_property("Seed blend", seed, pipe.max_blend_seeds, pipe.blend_weight_max, "seed"),
        "prompt_interpolation_method": {
            "type": "string",
            "title": "Prompt blending",
            "enum": list(INTERPOLATION_METHODS),
            "default": pipe.prompt_interpolation,
            "description": "How blended prompts mix: linear (weighted sum) or slerp (along the sphere).",
        },
    }
    limit = variant.max_transition_frames()
    if limit > 0:
        props["prompt_transition_frames"] = {
            "type": "integer",
            "title": "Prompt transition (frames)",
            "minimum": 0,
            "maximum": limit,
            "default": settings.realtime.pipeline.prompt_transition_frames,
            "description": "Frames a prompt change takes to arrive; 0 jumps at once.",
        }
    for name, blend in BLEND_TENSORS.items():
        props[name].update(
            {
                "x-triton-input": blend.values.name,
                "x-triton-datatype": blend.values.datatype,
                "x-triton-weights": {"input": blend.weights.name, "datatype": blend.weights.datatype},
            }
        )
        _demo_field(props[name], name, "list", hide=True)
    _demo_field(props["prompt_interpolation_method"], "prompt_interpolation_method", "select", hide=True)
    if "prompt_transition_frames" in props:
        _demo_field(props["prompt_transition_frames"], "prompt_transition_frames", "range", hide=True, step=1)
    return props


def input_schema(settings: Settings, mode: Mode, prompt_tokens: int) -> dict[str, Any]:
    """A JSON schema of the accepted parameters, their ranges and defaults."""
    pipe, variant = settings.pipeline, settings.variant(mode)
    max_chars = settings.server.max_prompt_chars
    last_step = pipe.num_inference_steps - 1
    props: dict[str, dict[str, Any]] = {
        "prompt": {
            "type": "string",
            "title": "Prompt",
            "default": pipe.default_prompt,
            "description": f"What to paint; at most {prompt_tokens} tokens.",
            "maxLength": max_chars,
            "x-max-tokens": prompt_tokens,
        },
        "negative_prompt": {
            "type": "string",
            "title": "Negative prompt",
            "default": pipe.default_negative_prompt,
            "description": "What to avoid; used with full or initialize guidance.",
            "maxLength": max_chars,
            "x-max-tokens": prompt_tokens,
        },
        "seed": {
            "type": "integer",
            "title": "Seed",
            "minimum": 0,
            "maximum": SEED_MAX,
            "default": pipe.default_seed,
            "description": "Same drawing, prompt and seed give the same picture.",
        },
        "guidance_scale": {
            "type": "number",
            "title": "Guidance scale",
            "minimum": 0.0,
            "maximum": pipe.guidance_scale_max,
            "default": variant.guidance_scale,
            "description": f"Prompt strength; guidance mode is {variant.cfg_type!r}.",
        },
        "delta": {
            "type": "number",
            "title": "Delta",
            "minimum": 0.0,
            "maximum": 5.0,
            "default": variant.delta,
            "description": "Weight of the self-guidance noise.",
        },
        "t_index_list": {
            "type": "array",
            "title": "Denoising steps",
            "items": {"type": "integer", "minimum": 0, "maximum": last_step},
            "minItems": 1,
            "maxItems": MAX_DENOISING_STEPS,
            "x-strictly-increasing": True,
            "default": list(variant.t_index_list),
            "description": "Strictly increasing step indices; lower keeps less of the input.",
        },
    }
    props.update(blend_schema(settings, mode, prompt_tokens))
    for name, tensor in PARAMETER_TENSORS.items():
        if name not in props:
            continue  # a parameter this variant does not offer (a transition where no stream lives on)
        props[name]["x-triton-input"] = tensor.name
        props[name]["x-triton-datatype"] = tensor.datatype
    _demo_field(props["prompt"], "prompt", "textarea")
    _demo_field(props["negative_prompt"], "negative_prompt", "textarea")
    _demo_field(props["seed"], "seed", "seed")
    _demo_field(props["guidance_scale"], "guidance_scale", "range", step=0.1)
    _demo_field(props["delta"], "delta", "range", step=0.1)
    _demo_field(props["t_index_list"], "t_index_list", "list", hide=True)
    props["width"] = _size_property("Width", pipe.width)
    props["height"] = _size_property("Height", pipe.height)
    _demo_field(props["width"], "width", "range", hide=True, step=64)
    _demo_field(props["height"], "height", "range", hide=True, step=64)
    return {"type": "object", "title": f"{mode} parameters", "properties": props, "additionalProperties": False}


def model_facts(settings: Settings, mode: Mode, model_path: str) -> dict[str, Any]:
    """Everything the frontends show or check, as one JSON-serialisable mapping."""
    variant = settings.variant(mode)
    tokens = max_prompt_tokens(model_path)
    return {
        "info": demo_info(
            {
                "mode": mode,
                "model_id": settings.model.model_id,
                "acceleration": settings.model.acceleration,
                "width": settings.pipeline.width,
                "height": settings.pipeline.height,
                "t_index_list": list(variant.t_index_list),
                "cfg_type": variant.cfg_type,
                "use_tiny_vae": variant.use_tiny_vae,
                "stateful": mode == "realtime",
                "max_image_bytes": settings.pipeline.max_image_bytes,
                "max_prompt_tokens": tokens,
                "default_jpeg_quality": settings.performance(mode).jpeg_quality,
            },
            mode,
        ),
        "input_params": input_schema(settings, mode, tokens),
    }


def demo_info(facts_info: dict[str, Any], mode: Mode) -> dict[str, Any]:
    """`info` as StreamDiffusion's demo pages read it: a schema whose properties hold input_mode and name."""
    return {
        **facts_info,
        "title": "Info",
        "type": "object",
        "properties": {
            "name": {"title": "Name", "type": "string", "default": f"StreamDiffusion {mode} on Triton"},
            "input_mode": {"title": "Input Mode", "type": "string", "default": "image"},
            "page_content": {"title": "Page Content", "type": "string", "default": PAGE_CONTENT},
        },
    }
