"""The one error type a request can fail with: the client sent something the model cannot take."""


class RequestError(ValueError):
    """A bad request. model.py answers it with INVALID_ARG and this message; the other requests go on."""
