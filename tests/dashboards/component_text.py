"""``texts(component)``: all text inside a Dash component tree, for assertions on a page's output."""

from __future__ import annotations


def texts(component) -> str:
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(texts(c) for c in component)
    return texts(getattr(component, "children", None))
