"""Model builders and the demo model: architectures as data, training scenes, the trainer."""
