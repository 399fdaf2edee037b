"""The WebSocket protocol's vocabulary: statuses, close codes and the messages the server sends.

Kept in one module so that the handler, the policies and the documentation agree on every word
an outside client is written against.

Server -> client (text, one JSON object each):
    {"status": "connected", "session_key": "..."} first, once; the key opens this session's MJPEG
                                                  stream and lets a reconnect replace it
                                                  (frontends/session_binding.py)
    {"status": "send_frame"}                      ready for the next frame
    {"status": "wait"}                            busy (canvas: the pending queue is full)
    {"status": "error", "message": "..."}         a bad message or a failed inference; the session goes on
                                                  unless a close with one of the codes below follows
                                                  ("frame N: not processed, the server is shutting down..."
                                                  for each frame N of the session left when 1001 follows)
    {"status": "timeout", "message": "..."}       just before an idle session is closed
    {"status": "pong"}                            answer to {"status": "ping"}
    {"status": "params_updated", "params": {...}} answer to {"status": "update_params", ...}

Client -> server:
    binary  [4-byte big-endian JSON length][UTF-8 JSON {"status": "next_frame", ...params}][image bytes]
    text    {"status": "ping"}                        keeps an idle session open, answered with pong
    text    {"status": "update_params", ...params}    parameters for later frames (a frame's own
                                                      parameters still win for that frame)
"""

from __future__ import annotations

import json
import re
from enum import IntEnum
from typing import Any

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

STATUS_NEXT_FRAME = "next_frame"
STATUS_PING = "ping"
STATUS_UPDATE_PARAMS = "update_params"
CLIENT_TEXT_STATUSES = (STATUS_PING, STATUS_UPDATE_PARAMS)


class CloseCode(IntEnum):
    """Why the server closed a session; 4000+ are this service's own."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The server is shutting down."""
    POLICY_VIOLATION = 1008
    """Persistent flooding past server.max_messages_per_second."""
    MESSAGE_TOO_BIG = 1009
    """A message over server.max_message_bytes (aiohttp closes with it by itself)."""
    INTERNAL_ERROR = 1011
    """The session failed on the server's side (logged there)."""
    TRY_AGAIN_LATER = 1013
    """server.max_sessions_per_mode sessions of this mode are open, or server.security.max_sessions_per_client
    sessions of this client address."""
    REPLACED = 4001
    """A newer connection with the same user_id took over (server.duplicate_user: replace)."""
    DUPLICATE_USER = 4002
    """The user_id is already connected (server.duplicate_user: reject)."""
    IDLE_TIMEOUT = 4003
    """Nothing arrived from the client for server.idle_timeout_s."""


class BadMessage(ValueError):
    """The client sent something the protocol refuses; the text says what and how to fix it.

    Answered with {"status": "error"}; the session goes on.
    """


def valid_user_id(user_id: str) -> bool:
    return USER_ID_PATTERN.fullmatch(user_id) is not None


def message(status: str, **fields: Any) -> str:
    return json.dumps({"status": status, **fields}, separators=(",", ":"))


def connected(session_key: str, **fields: Any) -> str:
    return message("connected", **fields, session_key=session_key)


SEND_FRAME = message("send_frame")
WAIT = message("wait")
PONG = message("pong")


def error(text: str) -> str:
    return message("error", message=text)


def not_processed_shutting_down(seq: int) -> str:
    """The error text of a frame the server took but will not answer with a result: it is stopping."""
    return f"frame {seq}: not processed, the server is shutting down; reconnect and send it again"


def timeout(text: str) -> str:
    return message("timeout", message=text)


def params_updated(params: dict[str, Any]) -> str:
    return message("params_updated", params=params)
