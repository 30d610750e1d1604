"""Every bad request to the lab's HTTP API gets a 4xx with a JSON reason, over real HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from lab_adapters.simlab.inprocess import SimLabHandle, running_simlab
from lab_adapters.simlab.limits import MAX_IDS

from .conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BRANIN = {"scenario": "branin", "inputs": {"x1": 1.0, "x2": 2.0}, "properties": ["y"], "campaign": "c"}


@pytest.fixture
def client(simlab: SimLabHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simlab.url, headers=AUTH, timeout=10) as c:
        yield c


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer tökén".encode(),  # UTF-8 bytes on the wire: arrives as Latin-1 text above 0x7e
        "Bearer tök".encode("latin-1"),
        b"Bearer \xff\xfe",
        b"Bearer " + TOKEN.encode() + b"\xc3\xa9",
        b"Bearer",
        b"Token abc",
        b"Bearer two words",
        b"Basic dXNlcjpwYXNz",
        b"Bearer " + b"a" * 5000,
    ],
)
def test_a_non_ascii_or_malformed_token_is_401(simlab: SimLabHandle, authorization: bytes) -> None:
    for method, path in [("GET", "/v1/experiments"), ("POST", "/v1/experiments"), ("GET", "/v1/stats")]:
        response = httpx.request(
            method,
            simlab.url + path,
            json=BRANIN,
            headers=[(b"Authorization", authorization), (b"Idempotency-Key", b"k")],
        )
        assert response.status_code == 401, (authorization, method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization" in response.json()["detail"] or "bearer token" in response.json()["detail"]
    assert httpx.get(f"{simlab.url}/v1/stats", headers=AUTH).json()["experiments"] == 0


def test_a_well_formed_wrong_token_stays_403(simlab: SimLabHandle) -> None:
    response = httpx.get(f"{simlab.url}/v1/experiments", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 403
    assert response.json()["detail"] == "the bearer token is not valid for this lab"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cursor": "9" * 33}, "is not a cursor this lab issued"),
        ({"cursor": "9" * 19}, "is not a cursor this lab issued"),
        ({"cursor": "-1"}, "is not a cursor this lab issued"),
        ({"cursor": "abc"}, "is not a cursor this lab issued"),
        ({"cursor": "1e3"}, "is not a cursor this lab issued"),
        ({"cursor": "٣"}, "is not a cursor this lab issued"),  # a Unicode digit int() would accept
        ({"limit": "9" * 33}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "not a date"}, "since"),
        ({"ids": ",".join(f"exp-{i}" for i in range(MAX_IDS + 1))}, f"at most {MAX_IDS}"),
    ],
)
def test_an_out_of_range_or_non_numeric_query_parameter_is_400(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    response = client.get("/v1/experiments", params=params)
    assert response.status_code == 400, response.text
    assert message in str(response.json()["detail"])


def test_the_largest_cursor_and_an_extreme_since_are_answered(client: httpx.Client) -> None:
    assert client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "a"}).status_code == 201
    assert client.get("/v1/experiments", params={"cursor": "9" * 18}).json() == {"items": [], "next_cursor": None}
    for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00", "9999-12-31"):
        assert client.get("/v1/experiments", params={"since": since}).status_code == 200, since


def test_a_body_over_the_limit_is_413_and_nothing_is_stored() -> None:
    with running_simlab(token=TOKEN, time_scale=1e-5, max_body_bytes=2000) as lab:
        with httpx.Client(base_url=lab.url, headers=AUTH, timeout=10) as client:
            big = {**BRANIN, "metadata": {"note": "x" * 5000}}
            declared = client.post("/v1/experiments", json=big, headers={"Idempotency-Key": "big"})
            assert declared.status_code == 413
            assert "larger than this lab accepts (2000 bytes)" in declared.json()["detail"]

            def chunks() -> Iterator[bytes]:  # streamed without a Content-Length
                yield b'{"scenario": "branin", "inputs": {"x1": 1.0, "x2": 2.0}, "metadata": {"note": "'
                for _ in range(50):
                    yield b"x" * 100
                yield b'"}}'

            streamed = client.post(
                "/v1/experiments",
                content=chunks(),
                headers={"Idempotency-Key": "streamed", "Content-Type": "application/json"},
            )
            assert "content-length" not in streamed.request.headers
            assert streamed.status_code == 413, streamed.text
            assert "larger than this lab accepts" in streamed.json()["detail"]
            # a body under the limit is still accepted, and neither large one was stored
            assert client.post("/v1/experiments", json=BRANIN, headers={"Idempotency-Key": "ok"}).status_code == 201
            assert client.get("/v1/stats").json()["experiments"] == 1


def test_the_default_limit_refuses_a_50_mb_body_from_its_content_length(simlab: SimLabHandle) -> None:
    """The lab answers from the header alone: it reads none of the 50 MB (the head is sent by hand)."""
    host, port = simlab.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/experiments HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nIdempotency-Key: huge\r\n"
            b"Content-Length: 52428800\r\n\r\n" + b'{"scenario": "branin", "inputs": {'
        )
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(65536)):  # the JSON reason ends the answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"larger than this lab accepts (1048576 bytes)" in answer


def test_a_listing_is_bounded_by_size_and_pages_on(client: httpx.Client, simlab: SimLabHandle) -> None:
    """Experiments near the body limit: a page of 500 stops at the listing's size bound, and paging goes on."""
    note = "x" * 900_000
    for i in range(12):
        body = {**BRANIN, "inputs": {"x1": float(i) / 2, "x2": 1.0}, "metadata": {"note": note}}
        assert client.post("/v1/experiments", json=body, headers={"Idempotency-Key": f"big-{i}"}).status_code == 201
    seen, cursor, sizes = [], None, []
    while True:
        response = client.get("/v1/experiments", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        page = response.json()
        sizes.append(len(response.content))
        seen += [item["id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) == 12
    assert len(sizes) >= 2 and max(sizes) < 10 * 1024 * 1024
