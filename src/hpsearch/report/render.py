"""A report's sections written out: ``report.md`` (Markdown with PNG figures beside it) and a
self-contained ``index.html`` (the same text, the figures embedded), from a small Markdown subset:
paragraphs, ``- `` lists, pipe tables, ``**bold**`` and ``code``."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .advice import fmt


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)  # markdown paragraphs, lists or tables
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)


def table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_markdown(sections: list[Section], title: str, path: Path) -> None:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for t in s.text:
            lines += [t, ""]
        for fname, caption in s.figures:
            lines += [f"![{caption}]({fname})", "", f"*{caption}*", ""]
    path.write_text("\n".join(lines))


def _md_inline(text: str) -> str:
    out = html.escape(text)
    parts = out.split("**")
    out = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _md_block(text: str) -> str:
    lines = text.splitlines()
    if lines and lines[0].startswith("|"):
        head = [c.strip() for c in lines[0].strip("|").split("|")]
        body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
        rows = "".join("<tr>" + "".join(f"<td>{_md_inline(c)}</td>" for c in r) + "</tr>"
                       for r in body)
        return ("<table><thead><tr>" + "".join(f"<th>{_md_inline(h)}</th>" for h in head) +
                f"</tr></thead><tbody>{rows}</tbody></table>")
    if lines and lines[0].startswith("- "):
        return "<ul>" + "".join(f"<li>{_md_inline(ln[2:])}</li>" for ln in lines) + "</ul>"
    return f"<p>{_md_inline(text)}</p>"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}td,th{border:1px solid #ddd;
padding:.25em .55em;text-align:right}th{background:#f4f4f4}td:nth-child(4){text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}figcaption{color:#555;
font-size:.9em}code{background:#f4f4f4;padding:0 .2em}li{margin:.25em 0}"""


def write_html(sections: list[Section], title: str, out: Path) -> None:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [_md_block(t) for t in s.text]
        for fname, caption in s.figures:
            data = base64.b64encode((out.parent / fname).read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
                        f"</figcaption></figure>")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                   f"{html.escape(title)}</title><style>{CSS}</style></head><body>"
                   + "\n".join(body) + "</body></html>")
