"""Conversation exports: txt, md, json and pdf (fpdf2)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import orjson
from fpdf import FPDF

FORMATS = {
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "pdf": "application/pdf",
}
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def title_of(conv: dict[str, Any]) -> str:
    return f"{conv['character']}" + (f" ({conv['series']})" if conv.get("series") else "")


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def to_txt(conv: dict[str, Any], messages: list[dict[str, Any]]) -> bytes:
    lines = [f"Conversation with {title_of(conv)}", f"Started {_when(conv['created_at'])}", ""]
    for m in messages:
        who = "You" if m["role"] == "user" else m["sender"]
        flag = " [incomplete]" if m["status"] == "incomplete" else ""
        pin = " [pinned]" if m["pinned"] else ""
        lines.append(f"[{_when(m['created_at'])}] {who}{pin}{flag}:")
        lines.append(m["content"])
        lines.append("")
    return "\n".join(lines).encode()


def to_md(conv: dict[str, Any], messages: list[dict[str, Any]]) -> bytes:
    lines = [f"# Conversation with {title_of(conv)}", "", f"_Started {_when(conv['created_at'])}_", ""]
    for m in messages:
        who = "You" if m["role"] == "user" else m["sender"]
        marks = (" 📌" if m["pinned"] else "") + (" _(incomplete)_" if m["status"] == "incomplete" else "")
        lines.append(f"**{who}**{marks} — {_when(m['created_at'])}")
        lines.append("")
        lines.extend("> " + line if line else ">" for line in m["content"].split("\n"))
        lines.append("")
    return "\n".join(lines).encode()


def to_json(conv: dict[str, Any], messages: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {"conversation": conv, "messages": messages, "exported_at": datetime.now(UTC).isoformat()},
        option=orjson.OPT_INDENT_2,
    )


def to_pdf(conv: dict[str, Any], messages: list[dict[str, Any]], font_path: str | None = None) -> bytes:
    """CPU-bound: call it in a worker thread."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Conversation with {title_of(conv)}")
    pdf.set_creator("SceneXtras")
    font = font_path or next((p for p in _FONT_CANDIDATES if os.path.exists(p)), None)
    unicode_font = bool(font and os.path.exists(font))
    if unicode_font:
        pdf.add_font("Body", "", font)
        family = "Body"
    else:
        family = "Helvetica"

    def clean(text: str) -> str:
        # The core fonts only cover Latin-1; a TTF font covers the rest.
        return text if unicode_font else text.encode("latin-1", "replace").decode("latin-1")

    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font(family, size=16)
    pdf.multi_cell(0, 9, clean(f"Conversation with {title_of(conv)}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=9)
    pdf.multi_cell(0, 5, clean(f"Started {_when(conv['created_at'])}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for m in messages:
        who = "You" if m["role"] == "user" else m["sender"]
        flag = " (incomplete)" if m["status"] == "incomplete" else ""
        pdf.set_font(family, size=10)
        pdf.set_text_color(90, 90, 90)
        pdf.multi_cell(0, 5, clean(f"{who}{flag} - {_when(m['created_at'])}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
        pdf.set_font(family, size=11)
        pdf.multi_cell(0, 6, clean(m["content"]), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
    return bytes(pdf.output())
