"""The server's handle on its engine core process (core_process.py): start it, send it
requests and aborts, receive its step results, stop it. Sends may come from any thread (a
lock keeps them whole); receiving is one thread's job (AsyncLLM's receiver)."""
from __future__ import annotations

import pickle
import shutil
import subprocess
import tempfile
import threading
import time

import msgspec
import zmq

from ember.config import EngineConfig
from ember.engine.core import StepHook
from ember.engine.core_prestart import take_core
from ember.engine.messages import CoreDead, FromCore, Ready, Stop, ToCore

# How long start-up may take before the server gives up (a 7B model loads in seconds; a cold
# Triton cache compiles for a minute or two).
STARTUP_TIMEOUT_S = 1800.0
SEND_TIMEOUT_MS = 2000


class EngineCoreStartError(RuntimeError):
    """The engine core process failed before it was ready."""


class CoreGoneError(RuntimeError):
    """The engine core process is gone: nothing takes messages any more."""


class CoreProcess:
    def __init__(self, config: EngineConfig, before_step: StepHook | None = None):
        # The sockets live in a directory only this user can enter.
        self._dir = tempfile.mkdtemp(prefix="ember-core-")
        self._context = zmq.Context()
        self._to_core = self._context.socket(zmq.PUSH)
        self._from_core = self._context.socket(zmq.PULL)
        # A send never waits long: a core that is gone has no socket to take the message.
        self._to_core.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        self._to_core.bind(f"ipc://{self._dir}/to-core")
        self._from_core.bind(f"ipc://{self._dir}/from-core")
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(FromCore)
        self._send_lock = threading.Lock()
        # The socket pair stays open for the core's lifetime: its hang-up is how the core learns
        # that this process died.
        self.proc, self._lifeline = take_core()  # pre-started by `ember serve`, or new
        self.num_kv_blocks = 0  # known once ready
        try:
            self._lifeline.send_bytes(pickle.dumps(
                (config, before_step, f"ipc://{self._dir}/to-core", f"ipc://{self._dir}/from-core")))
        except BaseException:
            self.stop(timeout=0)
            self.release()
            raise

    def wait_until_ready(self) -> None:
        """Block until the core has loaded the model and sized its cache (the caller may do its
        own start-up meanwhile). EngineCoreStartError if it fails."""
        try:
            self.num_kv_blocks = self._ready_message()
        except BaseException:
            self.stop(timeout=0)
            self.release()
            raise

    def _ready_message(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            message = self.receive(timeout_ms=200)
            if isinstance(message, Ready):
                return message.num_kv_blocks
            if isinstance(message, CoreDead):
                raise EngineCoreStartError(f"The engine core failed to start: {message.error}")
            if self.proc.poll() is not None:
                raise EngineCoreStartError(f"The engine core exited with status {self.proc.returncode} "
                                           "while starting (see its log above).")
        raise EngineCoreStartError(f"The engine core was not ready within {STARTUP_TIMEOUT_S:.0f} s.")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: ToCore) -> None:
        """CoreGoneError when the core cannot take it (it exited)."""
        payload = self._encoder.encode(message)
        with self._send_lock:
            try:
                self._to_core.send(payload, copy=False)
            except zmq.Again:
                raise CoreGoneError("The engine core is not taking messages (it exited).") from None

    def receive(self, timeout_ms: int) -> FromCore | None:
        """The core's next message, or None after `timeout_ms` without one."""
        if not self._from_core.poll(timeout_ms):
            return None
        return self._decoder.decode(self._from_core.recv(copy=False).buffer)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the core to stop (its requests aborted, its executor's workers stopped); kill it
        if it has not exited within `timeout` seconds."""
        if self.is_alive():
            try:
                self.send(Stop())
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, CoreGoneError):
                self.proc.kill()
                self.proc.wait()

    def release(self) -> None:
        """Close the sockets, once the core is stopped and nothing receives any more."""
        self._lifeline.close()
        self._to_core.close(linger=0)
        self._from_core.close(linger=0)
        self._context.term()
        shutil.rmtree(self._dir, ignore_errors=True)
