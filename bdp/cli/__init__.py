from bdp.cli.commands import main

__all__ = ["main"]
