"""Log lines in vLLM's style for the command line and the server:
`INFO 11-23 10:00:00 [async_engine.py:42] message`."""
from __future__ import annotations

import logging

_FORMAT = "%(levelname)s %(asctime)s [%(filename)s:%(lineno)d] %(message)s"


def configure_logging(level: int | str = logging.INFO) -> None:
    logger = logging.getLogger("ember")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%m-%d %H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
