"""The wire contract of frontends and models: tensor names, types, model facts. No torch, no aiohttp."""
