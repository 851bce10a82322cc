"""The built-in plugins: implementations only, each importing nothing but ``lookups``.

They are registered exactly like third-party plugins, through ``pyproject.toml``'s ``lookups``
entry points.
"""
