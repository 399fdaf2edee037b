"""Realtime's filters over time, on a stream's latents: steadier pictures from a noisy camera.

A still camera still sends a slightly different frame each time (sensor noise), and the model
answers each difference with a slightly different picture: flicker. Two recursive filters act on
the noised input latent `x = add_noise(image_latent, init_noise[0], 0)`, which is linear in the
image latent (the noise is fixed per stream), so either is the same as filtering the image latent:

- input smoothing `s`: `x <- (1 - s) * x + s * x_prev`, an exponential average of the camera's
  latents (`x_prev` is the last smoothed input). Noise shrinks by sqrt((1 - s) / (1 + s)); a
  moving scene trails by about s / (1 - s) frames.
- output feedback `f`: `x <- (1 - f) * x + f * add_noise(previous_output, init_noise[0], 0)`, the
  stream's last output latent mixed back in. The model restyles its own output again, which with
  the demo model amplifies rather than damps (docs/benchmarks.md), so it is off by default.

Weight 0 is the plain pipeline. The state is kept on the stream object, so it lives and dies with
the sequence's stream: a restyle keeps it, a new seed or step list starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from streamdiffusion import StreamDiffusion

_INPUT = "_smoothed_input_latent"
_OUTPUT = "_previous_output_latent"


@dataclass(frozen=True)
class TemporalFilter:
    input_smoothing: float = 0.0
    output_feedback: float = 0.0

    def before(self, stream: StreamDiffusion, x_t_latent: torch.Tensor) -> torch.Tensor:
        """The noised input latent [1,4,h,w] as the UNet should see it."""
        x = x_t_latent
        previous_input: torch.Tensor | None = getattr(stream, _INPUT, None)
        if self.input_smoothing > 0.0:
            if previous_input is not None:
                x = (1.0 - self.input_smoothing) * x + self.input_smoothing * previous_input
            setattr(stream, _INPUT, x)
        previous_output: torch.Tensor | None = getattr(stream, _OUTPUT, None)
        if self.output_feedback > 0.0 and previous_output is not None:
            noised = stream.add_noise(previous_output, stream.init_noise[0], 0)
            x = (1.0 - self.output_feedback) * x + self.output_feedback * noised
        return x

    def after(self, stream: StreamDiffusion, output_latent: torch.Tensor) -> None:
        """Keep the frame's output latent [1,4,h,w] for the next frame's feedback."""
        if self.output_feedback > 0.0:
            setattr(stream, _OUTPUT, output_latent)


NO_FILTER = TemporalFilter()
"""Every frame on its own: StreamDiffusion's plain stream batch."""
