"""Command line: thin commands over the public API.

Every module in this package whose name starts with ``cmd_`` is a command module. It defines
``register(registry: CommandRegistry) -> None`` and adds its commands there, so a new command
is a new module and no shared file changes.
"""
