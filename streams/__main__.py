"""``python -m streams`` runs the ``callguard`` command."""

from streams.cli import main

main()
