"""Child processes of Ember's own (the engine core behind the server, tensor-parallel workers):
each a fresh interpreter running `python -m MODULE FD`, driven through a socket pair it
inherits. No fork of the parent (CUDA forbids it), no re-import of the user's script (which
multiprocessing's spawn would do), nothing listening on the network; and the child ends when its
parent does, however the parent ends."""
from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

import ember

PARENT_POLL_S = 1.0


def start_child(module: str) -> tuple[subprocess.Popen, Connection]:
    """Start `python -m module FD`; returns the process and this end of its socket pair."""
    ours, theirs = socket.socketpair()
    # The child imports ember as this process does, even from a source tree.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(ember.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", module, str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env)
    theirs.close()
    return proc, Connection(ours.detach())


def exit_with_parent(fd: int, parent: int) -> None:
    """Run on a thread of the child: exit as soon as the parent is gone. A parent killed
    outright (SIGKILL, OOM) says nothing: the kernel closes its end of the socket, which this end
    sees as a hang-up at once, even while the main thread is stuck (in a collective that will
    never complete, say). The parent check covers a parent whose socket lives on in a process it
    forked. Not PR_SET_PDEATHSIG: that fires when the *thread* that started the child ends, and
    a parent may start its children on a passing thread."""
    hangup = select.poll()
    hangup.register(fd, select.POLLHUP | getattr(select, "POLLRDHUP", 0))
    while not hangup.poll(PARENT_POLL_S * 1000) and os.getppid() == parent:
        pass
    os._exit(1)
