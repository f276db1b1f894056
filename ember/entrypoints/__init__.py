"""Ways in: the `ember` command line and the OpenAI-compatible HTTP server."""
