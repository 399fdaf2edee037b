"""JSON error answers: every refusal says what was wrong and what to do, as JSON."""

from __future__ import annotations

from aiohttp import web

from frontends.protocol import valid_user_id


def json_error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"status": "error", "message": message, **extra}, status=status)


def bad_user_id(user_id: str) -> web.Response | None:
    """The 400 answer for a user_id outside ^[A-Za-z0-9_-]{1,64}$, or None if it is fine."""
    if valid_user_id(user_id):
        return None
    return json_error(400, f"invalid user_id {user_id[:80]!r}: use 1 to 64 characters of letters, digits, '_' and '-'")


def user_id_of(request: web.Request) -> str:
    """The route's user_id; a malformed one ends the request here with the JSON 400."""
    user_id = request.match_info["user_id"]
    refusal = bad_user_id(user_id)
    if refusal is not None:
        raise web.HTTPBadRequest(body=refusal.body, content_type="application/json")
    return user_id
