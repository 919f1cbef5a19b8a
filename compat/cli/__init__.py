"""`kto-compat` (or `python -m compat`): the command line. compat.cli.main builds the parser from
every module's ``register(sub)`` and runs the chosen subcommand; this package file stays empty so
that no submodule's import runs the whole command line (no import cycles)."""
