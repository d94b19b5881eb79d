"""Story exports: plain text, Markdown, and PDF (fpdf2, with a Unicode TrueType font when the
system has DejaVu, else the core font with unmappable characters replaced)."""

from __future__ import annotations

import os

from fpdf import FPDF

FORMATS = {
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "pdf": "application/pdf",
}
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _byline(story: dict) -> list[str]:
    parts = []
    universe = story.get("universe") or {}
    if universe.get("name"):
        parts.append(f"Universe: {universe['name']}")
    names = [c.get("name") for c in story.get("characters") or [] if c.get("name")]
    if names:
        parts.append("Characters: " + ", ".join(names))
    return parts


def title(story: dict) -> str:
    return story["title"].strip() or "Untitled story"


def to_txt(story: dict) -> bytes:
    head = [title(story), *_byline(story), ""]
    return ("\n".join(head) + "\n" + story["body"] + "\n").encode()


def to_md(story: dict) -> bytes:
    head = [f"# {title(story)}", ""] + [f"_{line}_  " for line in _byline(story)] + [""]
    return ("\n".join(head) + "\n" + story["body"] + "\n").encode()


def to_pdf(story: dict) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(title(story))
    pdf.set_creator("SceneXtras")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    font = next((p for p in _FONT_CANDIDATES if os.path.exists(p)), None)
    if font:
        pdf.add_font("Story", "", font)
        family = "Story"

        def clean(text: str) -> str:
            return text
    else:
        family = "Helvetica"

        def clean(text: str) -> str:
            return text.encode("latin-1", "replace").decode("latin-1")

    pdf.set_font(family, size=18)
    pdf.multi_cell(0, 10, clean(title(story)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, size=10)
    for line in _byline(story):
        pdf.multi_cell(0, 6, clean(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(family, size=12)
    for paragraph in story["body"].split("\n"):
        pdf.multi_cell(0, 7, clean(paragraph) or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


RENDER = {"txt": to_txt, "md": to_md, "pdf": to_pdf}
