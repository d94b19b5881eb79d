"""Expo's push service (``/expo/--/api/v2/push/send`` and ``/push/getReceipts``), the protocol the
official ``exponent-server-sdk`` speaks, so the keyless fleet and the tests run the real SDK.

``push/send`` takes one message or a list (at most 100; ``to`` a token or a list of tokens) and
answers 200 ``{"data": [ticket, ...]}``, one ticket per recipient, in order: ``{"status": "ok",
"id"}`` or, for a token marked unregistered, ``{"status": "error", "message", "details": {"error":
"DeviceNotRegistered", "expoPushToken"}}``. A malformed request is 400 ``{"errors": [{"code",
"message"}]}``. ``push/getReceipts`` takes ``{"ids": [...]}`` and answers ``{"data": {id: receipt}}``
for the ids it knows: ``{"status": "ok"}`` or a DeviceNotRegistered error for tokens marked so
after sending. ``Authorization: Bearer`` is optional (Expo's enhanced security), any value accepted.

Control (``/_sandbox/expo``, tests only): ``POST {"down": bool, "unregistered": [token],
"unregistered_on_receipt": [token]}`` changes what is given (``down``: every request answers 503
until set back), ``GET /_sandbox/expo/messages?to=`` lists the messages accepted (one entry per
recipient), ``DELETE /_sandbox/expo/messages`` forgets them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, register_error_renderer, sandbox_scope

MAX_MESSAGES = 100
MAX_RECEIPT_IDS = 1000


def _error(status: int, code: str, message: str) -> Response:
    return JSON({"errors": [{"code": code, "message": message, "isTransient": status >= 500}]}, status_code=status)


@register_error_renderer("expo")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return _error(status, error_type or ("INTERNAL_SERVER_ERROR" if status >= 500 else "API_ERROR"), message or "")


def _store(state: SandboxState) -> dict[str, Any]:
    return state.stores["expo"]


def _reset(state: SandboxState) -> None:
    state.stores["expo"] = {
        "down": False,
        "unregistered": set(),
        "unregistered_on_receipt": set(),
        "messages": [],
        "receipts": {},
    }


def _is_token(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith("ExponentPushToken[") or value.startswith("ExpoPushToken["))


def build(state: SandboxState) -> Router:
    state.on_reset(_reset)

    async def send(request: Request) -> Response:
        store = _store(state)
        if store["down"]:
            return _error(503, "INTERNAL_SERVER_ERROR", "The push service is unavailable (sandbox: down).")
        body = sandbox_scope(request)["parsed"]
        messages = body if isinstance(body, list) else [body]
        if not messages or not all(isinstance(m, dict) for m in messages):
            return _error(400, "VALIDATION_ERROR", '"value" must be an object or an array of objects.')
        if len(messages) > MAX_MESSAGES:
            message = f"You are trying to send more than {MAX_MESSAGES} push notifications."
            return _error(400, "PUSH_TOO_MANY_NOTIFICATIONS", message)
        problems = []
        for i, m in enumerate(messages):
            to = m.get("to")
            targets = to if isinstance(to, list) else [to]
            if not targets or not all(isinstance(t, str) and t for t in targets):
                problems.append(f'child "to" fails because ["to" is required] at [{i}]')
            for key in ("title", "body", "sound", "priority"):
                if key in m and not isinstance(m[key], str):
                    problems.append(f'child "{key}" fails because ["{key}" must be a string] at [{i}]')
            if "data" in m and not isinstance(m["data"], dict):
                problems.append(f'child "data" fails because ["data" must be an object] at [{i}]')
        if problems:
            return _error(400, "VALIDATION_ERROR", "; ".join(problems))
        tickets = []
        for m in messages:
            for token in m["to"] if isinstance(m["to"], list) else [m["to"]]:
                if not _is_token(token) or token in store["unregistered"]:
                    tickets.append(
                        {
                            "status": "error",
                            "message": f'"{token}" is not a registered push notification recipient',
                            "details": {"error": "DeviceNotRegistered", "expoPushToken": token},
                        }
                    )
                    continue
                ticket_id = str(uuid.uuid4())
                store["messages"].append(
                    {
                        "id": ticket_id,
                        "to": token,
                        "title": m.get("title"),
                        "body": m.get("body"),
                        "data": m.get("data"),
                        "sound": m.get("sound"),
                        "received_at": time.time(),
                    }
                )
                store["receipts"][ticket_id] = token
                tickets.append({"status": "ok", "id": ticket_id})
        return JSON({"data": tickets})

    async def receipts(request: Request) -> Response:
        store = _store(state)
        if store["down"]:
            return _error(503, "INTERNAL_SERVER_ERROR", "The push service is unavailable (sandbox: down).")
        body = sandbox_scope(request)["parsed"]
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return _error(400, "VALIDATION_ERROR", 'child "ids" fails because ["ids" must be an array of strings]')
        if len(ids) > MAX_RECEIPT_IDS:
            message = f"You are trying to get more than {MAX_RECEIPT_IDS} push receipts in one request."
            return _error(400, "PUSH_TOO_MANY_RECEIPTS", message)  # the code Expo documents for it
        data = {}
        for receipt_id in ids:
            token = store["receipts"].get(receipt_id)
            if token is None:
                continue
            if token in store["unregistered_on_receipt"]:
                data[receipt_id] = {
                    "status": "error",
                    "message": f'"{token}" is not a registered push notification recipient',
                    "details": {"error": "DeviceNotRegistered"},
                }
            else:
                data[receipt_id] = {"status": "ok"}
        return JSON({"data": data})

    return Router(
        routes=[
            Route("/--/api/v2/push/send", send, methods=["POST"]),
            Route("/--/api/v2/push/getReceipts", receipts, methods=["POST"]),
        ]
    )


def control_routes(state: SandboxState) -> list[Route]:
    async def configure(request: Request) -> Response:
        spec = await request.json() if await request.body() else {}
        if not isinstance(spec, dict) or set(spec) - {"down", "unregistered", "unregistered_on_receipt"}:
            return JSON({"error": "expected {down?, unregistered?, unregistered_on_receipt?}"}, status_code=400)
        store = _store(state)
        if "down" in spec:
            store["down"] = bool(spec["down"])
        for key in ("unregistered", "unregistered_on_receipt"):
            if key in spec:
                store[key] = set(spec[key] or [])
        return JSON(
            {
                "down": store["down"],
                "unregistered": sorted(store["unregistered"]),
                "unregistered_on_receipt": sorted(store["unregistered_on_receipt"]),
            }
        )

    async def messages(request: Request) -> Response:
        to = request.query_params.get("to")
        data = [m for m in _store(state)["messages"] if not to or m["to"] == to]
        return JSON({"data": data})

    async def forget(request: Request) -> Response:
        _store(state)["messages"].clear()
        return JSON({"deleted": True})

    return [
        Route("/_sandbox/expo", configure, methods=["POST"]),
        Route("/_sandbox/expo/messages", messages, methods=["GET"]),
        Route("/_sandbox/expo/messages", forget, methods=["DELETE"]),
    ]
