"""Vertex AI list filters, shared by the components that find a model or an endpoint by its display name."""

from __future__ import annotations


def display_name_filter(display_name: str) -> str:
    """The filter clause matching `display_name` exactly (backslashes and double quotes escaped)."""
    escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'display_name="{escaped}"'
