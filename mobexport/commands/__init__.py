"""One module per command group: ``add_parser(name, parser)`` (cheap, no heavy imports) and ``run(args)``."""
