"""Text helpers for the HTML page: escaping, number formatting, byte sizes and small fragments.

`_e`, `_int` and `_num` escape and format values (a missing one shows as "–"),
`human_bytes` writes a byte count in binary units (the one such helper: the
terminal summary of `vectorpipe run` uses it too), `describe_embedding` turns
the manifest's embedding settings into one short line, and `_img` and `_bar`
are the inline image and share-bar fragments the page is built from.
"""

from __future__ import annotations

import base64
import html
from typing import Any


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _int(value: object) -> str:
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return _e(value) if value is not None else "–"


def _num(value: object, fmt: str = ".6g") -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else _e(value)
    if isinstance(value, int | float):
        return format(value, fmt)
    return _e(value)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def describe_embedding(e: dict[str, Any]) -> str:
    method = str(e.get("method", "?"))
    parts = [method]
    if "k" in e:
        parts.append(f"k={e['k']}")
    if method == "kmer" and e.get("canonical"):
        parts.append("canonical")
    if e.get("transform") not in (None, "none"):
        parts.append(str(e["transform"]))
    for key in ("dim", "sketch_size", "sketchSize"):
        if e.get(key) is not None and method != "kmer":
            parts.append(f"{key}={e[key]}")
    abundance = e.get("abundance")
    if isinstance(abundance, dict) and abundance.get("enabled"):
        parts.append(f"+ abundance (k={abundance.get('k', '?')})")
    return " ".join(parts)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>{_e(name)}</figcaption></figure>'


def _bar(share: float, colour: str = "#4c78a8") -> str:
    pct = max(0.0, min(1.0, share)) * 100
    return f'<div class="bar"><span style="width:{pct:.1f}%;background:{_e(colour)}"></span></div>'
