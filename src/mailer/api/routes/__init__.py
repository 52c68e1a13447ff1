"""The HTTP routes, one module per resource; thin: parse, call the domain, answer."""
