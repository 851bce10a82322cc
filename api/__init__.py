"""Interfaces a researcher touches: the ``lookups`` CLI (and, later, the REST API).

Importing this package stays fast: heavy libraries load inside the commands that need them.
"""
