"""aiohttp frontends: the WebSocket protocol, similarity filter, queues, pacing and MJPEG, over Triton gRPC.

No torch, no diffusers: everything model-side happens in Triton. `create_app` is the entry point
for embedding; `python -m frontends` runs it.
"""
