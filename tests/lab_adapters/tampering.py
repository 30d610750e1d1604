"""An httpx transport that passes every request to a real lab and rewrites some of its answers.

The lab behind it is real (the in-process simulated lab over loopback HTTP); only the JSON text of its answers
is changed, the way a faulty instrument driver or a buggy lab API would change it: the n-th experiment the
controller submits gets the n-th tampering of the list, in every answer that describes it (the status poll
and the experiment record).  Tamperings write JSON *text*, so ``NaN``, ``Infinity`` and ``1e999`` reach the
client exactly as a lab would send them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

#: Rewrites one experiment's record (a dict, changed in place) and returns the JSON text to send for it.
Tamper = Callable[[dict[str, Any]], str]

_PLACEHOLDER = "__tampered__"


def _with_value(text: str) -> Tamper:
    """Replace ``y``'s value by ``text`` (raw JSON: ``NaN``, ``"1.5"``, ``[1.0]``...)."""

    def tamper(record: dict[str, Any]) -> str:
        prop = (record.get("result") or {}).get("properties", {}).get("y")
        if prop is None:  # not finished yet: nothing to tamper with
            return json.dumps(record)
        prop["value"] = _PLACEHOLDER
        record["result"]["raw"]["noise"] = _PLACEHOLDER  # the lab's raw payload carries the same bad number
        return json.dumps(record).replace(f'"{_PLACEHOLDER}"', text)

    return tamper


def _with_field(**changes: Any) -> Tamper:
    """Change or add fields of ``y``'s answer."""

    def tamper(record: dict[str, Any]) -> str:
        prop = (record.get("result") or {}).get("properties", {}).get("y")
        if prop is not None:
            prop.update({k: (v(prop) if callable(v) else v) for k, v in changes.items()})
        return json.dumps(record)

    return tamper


def _with_status(status: str) -> Tamper:
    def tamper(record: dict[str, Any]) -> str:
        record["status"] = status
        return json.dumps(record)

    return tamper


#: Every bad answer of the issue, by name; ``convertible units`` is a good answer in other units (percent for
#: the Branin scenario's dimensionless ``1``).
TAMPERINGS: dict[str, Tamper] = {
    "convertible units": _with_field(value=lambda p: p["value"] * 100.0, std=lambda p: p["std"] * 100.0,
                                     units="%"),
    "string": _with_value('"1.5"'),
    "null": _with_value("null"),
    "list": _with_value("[1.0, 2.0]"),
    "extra field": _with_field(calibrated=True),
    "NaN": _with_value("NaN"),
    "+inf": _with_value("Infinity"),
    "-inf": _with_value("-Infinity"),
    "overflow": _with_value("1e999"),
    "incompatible units": _with_field(units="s"),
    "unknown status": _with_status("exploded"),
}

_RECORD = re.compile(r"^/v1/experiments/([^/]+)$")


@dataclass
class TamperingTransport(httpx.BaseTransport):
    """Forwards to the real lab; rewrites the answers about the n-th submitted experiment with ``tampers[n]``."""

    tampers: list[tuple[str, Tamper]]
    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    assigned: dict[str, str] = field(default_factory=dict)  # experiment id → tampering name
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)  # experiment id → the lab's true record

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code not in (200, 201) or request.method not in ("GET", "POST"):
            return response
        body = json.loads(response.read())
        path = request.url.path
        if request.method == "POST" and path == "/v1/experiments":
            if body["id"] not in self.assigned and len(self.assigned) < len(self.tampers):
                self.assigned[body["id"]] = self.tampers[len(self.assigned)][0]
            return self._answer(response, json.dumps(body))
        if request.method == "GET" and path == "/v1/experiments":
            items = [self._tampered(item) for item in body["items"]]
            text = json.dumps({**body, "items": _PLACEHOLDER}).replace(f'"{_PLACEHOLDER}"', f"[{', '.join(items)}]")
            return self._answer(response, text)
        if request.method == "GET" and _RECORD.match(path):
            return self._answer(response, self._tampered(body))
        return self._answer(response, json.dumps(body))

    def _tampered(self, record: dict[str, Any]) -> str:
        name = self.assigned.get(record.get("id", ""))
        if name is None:
            return json.dumps(record)
        if record.get("status") == "succeeded":
            self.originals[record["id"]] = json.loads(json.dumps(record))
        return dict(self.tampers)[name](record)

    @staticmethod
    def _answer(response: httpx.Response, text: str) -> httpx.Response:
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=text.encode())

    def close(self) -> None:
        self.inner.close()


def run_tampered_campaign(db_url: str, transport: TamperingTransport, *, name: str, experiments: int,
                          units: dict[str, str] | None = None) -> tuple[Any, int, Any]:
    """A Branin campaign of ``experiments`` run to its end on a real simulated lab behind ``transport``.

    Returns the campaign's database, its id and the loop's outcome.
    """
    from agent.loop import Backoff, LoopContext, run_campaign
    from agent.store import Database
    from agent.store.campaigns import register_campaign
    from agent.store.migrate import upgrade
    from lab_adapters.simlab.client import SimLabAdapter
    from lab_adapters.simlab.inprocess import running_simlab
    from tests.loop.conftest import branin_spec

    measurement: dict[str, Any] = {"properties": ["y"], "adapter": "lab", "fidelity": "branin",
                                   "options": {"scenario": "branin"}}
    if units is not None:
        measurement["units"] = units
    upgrade(db_url)
    db = Database(db_url)
    with running_simlab(scenarios=["branin"], time_scale=1e-5) as lab:
        spec = branin_spec(lab.url, lab.token, name=name, budget={"max_experiments": experiments},
                           measurements=[measurement])
        with db.transaction() as session:
            campaign_id = register_campaign(session, spec).id
        with SimLabAdapter(lab.url, lab.token, name="lab", transport=transport, backoff=0.01) as adapter:
            ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters={"lab": adapter},
                              backoff=Backoff(initial=0.02, maximum=0.1))
            outcome = run_campaign(ctx)
    return db, campaign_id, outcome
