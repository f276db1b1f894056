"""The engine core in a process of its own (`python -m ember.engine.core_process FD`), behind
the API server: it schedules and runs the model without ever waiting on HTTP, tokenization or
detokenization, which stay in the server's process (vLLM v1's EngineCore / AsyncLLM split).

Start-up: the server hands the config (and any test hook) through an inherited socket pair,
pickled: a private channel nothing else can reach. From then on requests and results travel
over two ZeroMQ IPC sockets in a private (0700) directory, as msgpack (messages.py): no TCP
listener, no unpickling of anything from a socket. The core exits when told to, when its loop
fails (after saying why), or when the server is gone (the socket pair hangs up), whatever it
is doing."""
from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

import msgspec
import zmq

from ember.child_process import exit_with_parent
from ember.config import EngineConfig
from ember.engine.core import EngineCore
import ember.executor  # noqa: F401  loaded while the server builds the config (core_prestart.py)
from ember.engine.input_processor import eos_token_ids
from ember.engine.messages import (Abort, AbortSample, AddRequest, CoreDead, FromCore, RequestRejected, Ready,
                                   StepResult, Stop, ToCore, from_wire)
from ember.entrypoints.logging_config import configure_logging
from ember.tokenizer import load_tokenizer

logger = logging.getLogger(__name__)

# While idle the loop wakes this often (milliseconds); it sleeps on the socket, not in a spin.
IDLE_POLL_MS = 1000


class CoreLoop:
    def __init__(self, core: EngineCore, inbox: zmq.Socket, outbox: zmq.Socket):
        self.core = core
        self.inbox, self.outbox = inbox, outbox
        self.decoder = msgspec.msgpack.Decoder(ToCore)
        self.encoder = msgspec.msgpack.Encoder()
        self.num_added = 0

    def run(self) -> None:
        """Take in every waiting message, run a step if there is work, send its results;
        repeat until told to stop."""
        while True:
            busy = self.core.has_unfinished_requests()
            if not busy and not self.inbox.poll(IDLE_POLL_MS):
                continue
            changed = False
            while self.inbox.poll(0):
                message = self.decoder.decode(self.inbox.recv(copy=False).buffer)
                if isinstance(message, Stop):
                    for request_id in list(self.core.requests):
                        self.core.abort_request(request_id)
                    self._send(StepResult([], self.core.current_stats(), self.num_added, self._take_step_sizes()))
                    return
                self._apply(message)
                changed = True
            updates = self.core.step() if self.core.has_unfinished_requests() else []
            if updates or changed or busy:
                self._send(StepResult(updates, self.core.current_stats(), self.num_added, self._take_step_sizes()))

    def _apply(self, message: ToCore) -> None:
        if isinstance(message, AddRequest):
            self.num_added += 1
            try:
                self.core.add_request(from_wire(message))
            except ValueError as e:  # its grammar, say: this request alone is refused
                self._send(RequestRejected(message.request_id, str(e)))
        elif isinstance(message, Abort):
            for request_id in message.request_ids:
                self.core.abort_request(request_id)
        elif isinstance(message, AbortSample):
            self.core.abort_sample(message.request_id, message.index)

    def _take_step_sizes(self) -> list[int]:
        sizes, self.core.completed_step_sizes = self.core.completed_step_sizes, []
        return sizes

    def _send(self, message: FromCore) -> None:
        self.outbox.send(self.encoder.encode(message), copy=False)


def _load_tokenizer(config: EngineConfig):
    if config.skip_tokenizer_init:
        return None
    return load_tokenizer(config.tokenizer_path, config.trust_remote_code, config.revision)


def _serve(conn: Connection) -> int:
    config, before_step, inbox_address, outbox_address = conn.recv()
    context = zmq.Context()
    inbox, outbox = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    inbox.connect(inbox_address)
    outbox.connect(outbox_address)
    outbox.setsockopt(zmq.LINGER, 5000)
    core = None
    try:
        # The tokenizer is loaded only if a constrained request needs it (not at start-up); the
        # end-of-sequence ids come from the checkpoint's configs.
        core = EngineCore(config, functools.partial(_load_tokenizer, config), eos_token_ids(config, None),
                          before_step)
        outbox.send(msgspec.msgpack.encode(Ready(core.num_kv_blocks)))
        CoreLoop(core, inbox, outbox).run()
        return 0
    except BaseException as e:  # noqa: BLE001 - the server learns why, then fails its requests
        logger.exception("The engine core failed")
        outbox.send(msgspec.msgpack.encode(CoreDead(repr(e))))
        return 1
    finally:
        if core is not None:
            core.shutdown()
        outbox.close()
        inbox.close(linger=0)
        context.term()


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the server decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    conn = Connection(int(sys.argv[1]))
    threading.Thread(target=exit_with_parent, args=(conn.fileno(), os.getppid()), daemon=True).start()
    code = _serve(conn)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skips the interpreter's slow teardown of torch


if __name__ == "__main__":
    main()
