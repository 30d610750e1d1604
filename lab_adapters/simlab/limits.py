"""What the lab's HTTP API accepts from a client: request body size, bearer-token shape, integer parameters.

Everything a client sends is untrusted.  These checks answer each bad request with a
4xx and one sentence, before the request can cost the lab memory or a 500: a body over
the limit is refused from its ``Content-Length`` or, when streamed without one, as soon
as the bytes read pass the limit — it is never read whole.
"""

from __future__ import annotations

import hmac
import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: RFC 6750's credentials are visible ASCII; 4 KiB is far beyond any token this lab issues.
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")
#: A cursor is a row sequence number the lab issued: a positive SQLite integer (below 2**63).
_CURSOR = re.compile(r"[0-9]{1,18}")
#: The most ids one listing may ask for (the page size limit); more would also exceed SQLite's bound variables.
MAX_IDS = 500
#: A listing stops adding experiments once their stored requests and results pass this size (one always fits).
MAX_PAGE_BYTES = 8 * 1024 * 1024


def is_wellformed_token(value: str) -> bool:
    """Whether ``value`` can be a bearer token at all (visible ASCII, no spaces, at most 4 KiB)."""
    return _TOKEN.fullmatch(value) is not None


def bearer_credentials(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 when it is missing or malformed.

    Starlette decodes header bytes as Latin-1, so a non-ASCII token arrives as a str with
    characters above 0x7e and is refused here rather than reaching the comparison.
    """
    if not header:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"})
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not is_wellformed_token(credentials.strip(" ")):
        raise HTTPException(
            401,
            "malformed Authorization header: expected 'Bearer <token>' with a token of visible ASCII characters",
            {"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return credentials.strip(" ")


def token_matches(credentials: str, token: str) -> bool:
    """Constant-time comparison on bytes (``secrets.compare_digest`` raises on non-ASCII str)."""
    return hmac.compare_digest(credentials.encode("ascii"), token.encode("utf-8"))


def parse_cursor(cursor: str | None) -> int:
    """The sequence number after which a listing continues; 400 for anything the lab cannot have issued."""
    if not cursor:
        return 0
    if _CURSOR.fullmatch(cursor) is None:
        shown = cursor if len(cursor) <= 40 else cursor[:40] + "..."
        raise HTTPException(400, f"cursor={shown!r} is not a cursor this lab issued (pass next_cursor back unchanged)")
    return int(cursor)


def parse_ids(ids: str | None) -> list[str] | None:
    """The comma-separated experiment ids of a listing; 400 when there are more than one page can hold."""
    if not ids:
        return None
    id_list = [i for i in ids.split(",") if i]
    if len(id_list) > MAX_IDS:
        raise HTTPException(400, f"ids= lists {len(id_list)} experiments; ask for at most {MAX_IDS} at a time")
    return id_list


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 without being read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the request body is larger than this lab accepts ({self.max_bytes} bytes)"}, status_code=413
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                # uvicorn has already refused a non-numeric Content-Length with 400
                if value.strip().isdigit() and int(value) > self.max_bytes:
                    await self._too_large()(scope, receive, send)
                    return
        received = 0
        too_large = answered = started = False

        async def limited_receive() -> Message:
            # Past the limit the app is told the client went away, so it stops reading; what it
            # answers to that is replaced by the 413 below.  (Raising here would not do: Starlette's
            # BaseHTTPMiddleware wraps the error in an ExceptionGroup and FastAPI answers it with 400.)
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered, started
            if not too_large:
                started = started or message["type"] == "http.response.start"
                await send(message)
            elif not answered:
                answered = True
                await self._too_large()(scope, receive, send)

        await self.app(scope, limited_receive, guarded_send)
        if too_large and not answered:
            await self._too_large()(scope, receive, send)
