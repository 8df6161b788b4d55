"""``python -m distributor.cli``: the same as the ``distributor`` command."""

from distributor.cli.commands import main

main()
