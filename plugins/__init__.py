"""The built-in plugins: implementations only, each importing nothing but ``contract``.

They are registered exactly like third-party plugins, through ``pyproject.toml``'s ``lookups``
entry points.
"""
