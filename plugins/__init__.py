"""Swappable parts discovered through the ``lookups`` entry-point group.

Built-ins are registered exactly like third-party plugins, through ``pyproject.toml``.
"""

from plugins.manager import get_plugin_manager, hookimpl

__all__ = ["get_plugin_manager", "hookimpl"]
