"""The command line (typer). One module per command group; no logic beyond parsing and printing."""
