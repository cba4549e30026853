"""Subcommands of the `imgsieve` command line, one module each: `add_arguments(parser)`, `run(args)`."""
