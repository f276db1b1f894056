"""`ember` subcommands: serve, generate, chat."""
