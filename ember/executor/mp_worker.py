"""A worker process of the mp backend (`python -m ember.executor.mp_worker FD`): one rank's
Worker, driven by calls that arrive on the inherited socket FD. It exits when told to, when
the socket closes, or when its parent (the engine process) is gone, whatever it is doing."""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection

from ember.child_process import exit_with_parent
from ember.executor.worker import Worker


def _serve(conn: Connection) -> int:
    """Run calls until told to stop (0), until the engine is gone (1), or until one fails (1,
    reported to the driver first)."""
    try:
        spec, config = conn.recv()
        logging.basicConfig(level=logging.WARNING,
                            format=f"%(asctime)s (tp rank {spec.rank}) %(levelname)s %(name)s: %(message)s")
        worker = Worker(config, spec)
        conn.send(("ok", None))
        while True:
            method, args, reply = conn.recv()
            if method == "shutdown":
                worker.close()
                return 0
            result = getattr(worker, method)(*args)
            if reply:
                conn.send(("ok", result))
    except EOFError:
        return 1  # the engine is gone
    except BaseException:  # noqa: BLE001 - any failure ends this rank, and the driver learns why
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass
        return 1


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: the engine decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # `kill -USR1 <pid>` prints where this rank is (to the engine's stderr): a rank stuck in a
    # collective shows which one.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    conn = Connection(int(sys.argv[1]))  # open to the end: the watch must see only the engine hang up
    threading.Thread(target=exit_with_parent, args=(conn.fileno(), os.getppid()), daemon=True).start()
    code = _serve(conn)
    sys.stdout.flush()
    sys.stderr.flush()
    # At once, skipping the interpreter's slow teardown of torch: after a failure, the other
    # ranks' collectives then break rather than wait for this one.
    os._exit(code)


if __name__ == "__main__":
    main()
