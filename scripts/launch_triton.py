#!/usr/bin/env python3
"""Start tritonserver with both StreamDiffusion models, wait until they are ready, and keep it running.

    .venv/bin/python scripts/launch_triton.py [--config FILE] [--grpc-port N --http-port N --metrics-port N]
                                              [--log-file F] [--run-dir DIR] [--check]

It assembles run/backends (the Python backend plus the shared model.py), renders
run/model_repository from model_repository/ and the YAML file, starts tritonserver with explicit
model control so only the two configured models load, and prints progress until both are ready.
Then it prints one line `READY grpc=HOST:PORT http=HOST:PORT metrics=HOST:PORT` (for scripts
that wait on it) and stays in the foreground until Ctrl-C or SIGTERM, which stop the server.
The server's own output goes to `triton.log_file`. The code is the sdlauncher package.
"""

import sys

from sdlauncher.cli import main

if __name__ == "__main__":
    sys.exit(main())
