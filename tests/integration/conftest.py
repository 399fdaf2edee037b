"""The session's servers (`triton_server`, `frontend_server`) are defined in tests/conftest.py."""
