"""``python -m api`` runs the ``lookups`` CLI."""

from api.cli import main

main()
