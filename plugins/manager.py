"""The plugin manager: loads every distribution's ``lookups`` entry points once per process."""

from functools import cache

import pluggy

from plugins import hookspecs

hookimpl = pluggy.HookimplMarker("lookups")


@cache
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("lookups")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("lookups")
    return pm
