"""The OpenAI-compatible HTTP server (`ember serve`)."""
