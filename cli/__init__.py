"""spanlake.cli: the `spanlake` command."""
