"""Request bodies as the sandbox reads and records them: Stripe's bracketed form encoding,
multipart uploads, JSON; and what a recorded request keeps (long strings cut, keys masked)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

MAX_RECORDED_STRING = 2000


def _split_form_key(key: str) -> list[str]:
    """``line_items[0][price]`` -> ``["line_items", "0", "price"]``; ``expand[]`` -> ``["expand", ""]``."""
    if "[" not in key or not key.endswith("]"):
        return [key]
    base, _, rest = key.partition("[")
    parts = [base]
    for piece in rest[:-1].split("]["):
        parts.append(piece)
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(isinstance(k, str) and k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def parse_stripe_form(body: str) -> dict[str, Any]:
    """Decode a form body (or query string) the way Stripe does.

    ``metadata[user_id]=u1`` -> ``{"metadata": {"user_id": "u1"}}``;
    ``line_items[0][price]=p&line_items[0][quantity]=1`` -> ``{"line_items": [{"price": "p", "quantity": "1"}]}``;
    ``expand[]=a&expand[]=b`` -> ``{"expand": ["a", "b"]}``. Values stay strings (Stripe coerces per
    parameter); an empty value (``metadata[k]=``) stays ``""``, which Stripe reads as "unset".
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_form_key(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # key[] -> append
                if not isinstance(node, list):
                    break
                if last:
                    node.append(value)
                else:
                    node.append({})
                    node = node[-1]
                continue
            nxt_is_append = not last and parts[i + 1] == ""
            if isinstance(node, list):  # can only happen after [] with nested keys; keep simple
                break
            if last:
                node[part] = value
            else:
                if part not in node or not isinstance(node[part], (dict, list)):
                    node[part] = [] if nxt_is_append else {}
                node = node[part]
    return _listify(root)


@dataclass
class UploadedFile:
    filename: str
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "size": len(self.data)}


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        if "=" in item:
            k, v = item.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            params[k.strip().lower()] = v
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """A small multipart/form-data parser (the sandbox has no python-multipart).

    Returns ``{name: str | UploadedFile}``; a name sent several times becomes a list.
    """
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    delim = b"--" + boundary.encode("latin-1")
    out: dict[str, Any] = {}
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        _, disp = _header_params(headers.get("content-disposition", ""))
        name = disp.get("name")
        if name is None:
            continue
        value: Any
        if "filename" in disp:
            value = UploadedFile(disp["filename"], headers.get("content-type", "application/octet-stream"), data)
        else:
            value = data.decode("utf-8", "replace")
        if name in out:
            prev = out[name]
            out[name] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[name] = value
    return out


def parse_body(body: bytes, content_type: str) -> Any:
    """Parse a request body by its content type; ``None`` when empty, raw text when unparseable."""
    if not body:
        return None
    ctype = (content_type or "").split(";")[0].strip().lower()
    try:
        if ctype == "application/json" or ctype.endswith("+json"):
            return json.loads(body)
        if ctype == "application/x-www-form-urlencoded":
            return parse_stripe_form(body.decode("utf-8"))
        if ctype == "multipart/form-data":
            return parse_multipart(body, content_type)
    except (ValueError, UnicodeDecodeError):
        return {"_unparseable": body[:MAX_RECORDED_STRING].decode("utf-8", "replace")}
    try:
        return json.loads(body)
    except ValueError:
        return body[:MAX_RECORDED_STRING].decode("utf-8", "replace")


def recordable(value: Any) -> Any:
    """A copy safe to keep in memory and to send as JSON: long strings cut, files summarised."""
    if isinstance(value, UploadedFile):
        return value.summary()
    if isinstance(value, str):
        if len(value) > MAX_RECORDED_STRING:
            return value[:MAX_RECORDED_STRING] + f"...[{len(value)} chars]"
        return value
    if isinstance(value, dict):
        return {k: recordable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [recordable(v) for v in value]
    return value


SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key"}


def mask_secret(value: str) -> str:
    scheme, sep, token = value.partition(" ")
    if not sep:
        scheme, token = "", value
    shown = token[:12] + "..." if len(token) > 16 else token
    return f"{scheme} {shown}".strip() if scheme else shown
