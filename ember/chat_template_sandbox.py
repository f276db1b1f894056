"""Chat templates rendered in a child process, under limits the OS enforces.

Jinja's ImmutableSandboxedEnvironment (transformers' renderer, as in-process) keeps a template
from reaching Python internals, but not from running for ever or filling memory in a single
C-level operation (`"a" * 10**10`, `10 ** 10 ** 8`, a loop nested in a loop). The server
therefore renders in a child process that:

- renders exactly as `tokenizer.apply_chat_template(..., tokenize=False)` would (same renderer,
  same template resolution and special-token variables, prepared here in the parent);
- stops a render after `timeout_s` (SIGALRM; a C-level operation that ignores it gets the
  child killed at `timeout_s + 1` and a fresh one started);
- runs with an address-space limit (RLIMIT_AS: its size at start-up plus `memory_bytes`), so a
  huge allocation is a MemoryError, not the host's memory;
- refuses output longer than `max_output_chars`;
- speaks JSON lines over its stdin/stdout (nothing is unpickled, no socket is opened), ignores
  SIGINT (the server decides when it ends) and dies with the server (PR_SET_PDEATHSIG).

Every failure is a ChatTemplateError (a jinja2.TemplateError): the request gets a 400."""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time

import jinja2

logger = logging.getLogger(__name__)

TIMEOUT_S = 3.0
MAX_OUTPUT_CHARS = 64 * 1024 * 1024
MEMORY_BYTES = 2 * 1024 * 1024 * 1024
_KILL_GRACE_S = 1.0
_START_TIMEOUT_S = 120.0


class ChatTemplateError(jinja2.TemplateError):
    """The template failed on these messages, or went past a limit."""


class TemplateSandbox:
    def __init__(self, timeout_s: float = TIMEOUT_S, max_output_chars: int = MAX_OUTPUT_CHARS,
                 memory_bytes: int = MEMORY_BYTES):
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ready = False
        self._buffer = b""
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child now (it imports the renderer while the engine loads)."""
        with self._lock:
            self._spawn()

    def render(self, tokenizer, messages: list[dict], chat_template: str | None = None,
               add_generation_prompt: bool = True, continue_final_message: bool = False,
               tools: list[dict] | None = None, chat_template_kwargs: dict | None = None) -> str:
        """As `tokenizer.apply_chat_template(messages, tokenize=False, ...)`, in the child."""
        job = _job(tokenizer, messages, chat_template, add_generation_prompt, continue_final_message, tools,
                   chat_template_kwargs)
        line = json.dumps(job).encode() + b"\n"
        with self._lock:
            if self._closed:
                raise ChatTemplateError("The chat template sandbox is closed.")
            reply = self._exchange(line)
        if "error" in reply:
            raise ChatTemplateError(reply["error"])
        return reply["text"]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop()

    # ----- the child -----

    def _spawn(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        # This file alone, not the ember package (whose import pulls in torch): a lean child.
        args = [sys.executable, "-I", "-c", _BOOTSTRAP, os.path.abspath(__file__), str(os.getpid()),
                str(self.timeout_s), str(self.max_output_chars), str(self.memory_bytes)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._ready, self._buffer = False, b""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(_KILL_GRACE_S)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def _exchange(self, line: bytes) -> dict:
        self._spawn()
        if not self._ready:
            ready = self._read_reply(time.monotonic() + _START_TIMEOUT_S)
            if ready is None:
                self._stop()
                raise ChatTemplateError("The chat template sandbox did not start.")
            self._ready = True
        try:
            self._proc.stdin.write(line)
            self._proc.stdin.flush()
        except OSError:
            self._stop()
            raise ChatTemplateError("The chat template sandbox stopped; try again.") from None
        reply = self._read_reply(time.monotonic() + self.timeout_s + _KILL_GRACE_S)
        if reply is None:  # hung in C code past SIGALRM, or died (out of memory)
            died = self._proc.poll() is not None
            self._stop()
            logger.warning("Chat template sandbox %s; starting a new one", "died" if died else "killed after the timeout")
            if died:
                raise ChatTemplateError("The chat template exhausted the sandbox's resources.")
            raise ChatTemplateError(f"The chat template did not finish within {self.timeout_s:g} s.")
        return reply

    def _read_reply(self, deadline: float) -> dict | None:
        """The child's next line as JSON; None on timeout or end of file."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)


def _job(tokenizer, messages, chat_template, add_generation_prompt, continue_final_message, tools,
         chat_template_kwargs) -> dict:
    """What apply_chat_template hands its renderer: the resolved template, the messages without
    None values, the special tokens as variables under the caller's kwargs."""
    if hasattr(tokenizer, "get_chat_template"):  # Hugging Face tokenizers
        template = tokenizer.get_chat_template(chat_template, tools)
        variables = dict(tokenizer.special_tokens_map)
    else:  # Qwen v1's tokenizer
        template = chat_template or tokenizer.chat_template
        variables = {"eos_token": tokenizer.eos_token}
    variables.update(chat_template_kwargs or {})
    return {"template": template, "messages": [{k: v for k, v in m.items() if v is not None} for m in messages],
            "tools": tools, "add_generation_prompt": add_generation_prompt,
            "continue_final_message": continue_final_message, "variables": variables}


# ----- child side -----

_BOOTSTRAP = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('ember_template_sandbox', "
              "sys.argv[1]); module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
              "module.child_main(sys.argv[2:])")

class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so no `except Exception` in a renderer swallows it."""


def _on_alarm(signum, frame):
    raise _Timeout()


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def child_main(argv: list[str]) -> None:
    parent_pid, timeout_s, max_output_chars, memory_bytes = int(argv[0]), float(argv[1]), int(argv[2]), int(argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        return
    from transformers.utils.chat_template_utils import render_jinja_template

    if memory_bytes > 0:
        import resource

        limit = _vm_size() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    out = sys.stdout.buffer

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj).encode() + b"\n")
        out.flush()

    reply({"ready": True})
    for line in sys.stdin.buffer:
        try:
            job = json.loads(line)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                rendered, _ = render_jinja_template(
                    [job["messages"]], tools=job["tools"], chat_template=job["template"],
                    add_generation_prompt=job["add_generation_prompt"],
                    continue_final_message=job["continue_final_message"], **job["variables"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            text = rendered[0]
            if len(text) > max_output_chars:
                reply({"error": f"The chat template's output is longer than the limit of {max_output_chars} "
                                "characters."})
            else:
                reply({"text": text})
        except _Timeout:
            reply({"error": f"The chat template did not finish within {timeout_s:g} s."})
        except MemoryError:
            reply({"error": "The chat template needed more memory than the sandbox allows."})
        except RecursionError:
            reply({"error": "The chat template recursed too deeply."})
        except Exception as e:  # noqa: BLE001 - the template's own error, for the client
            reply({"error": f"{type(e).__name__}: {e}" if not isinstance(e, jinja2.TemplateError) else str(e)})

