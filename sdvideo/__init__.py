"""Restyle a video file or an image sequence through the served models, over Triton gRPC.

`python -m sdvideo restyle INPUT OUTPUT` and the frontends' /video page run the same job
(sdvideo/job.py). No torch: the models run inside Triton.
"""
