"""Run ``invkit eval`` and SIGKILL it at a chosen point (used by ``test_kill.py``).

``python kill_driver.py MODE K eval ARGS...`` with MODE

- ``replace``: die just before the K-th ``os.replace`` (the K-th atomic write lands): inside the
  journal's header, a batch's cache, the final journal, ``results.json``, an image, the manifest;
- ``append``: die in the K-th batch's journal append, after half of its rows reached the file;
- ``timer``: die K milliseconds after the restoring starts;
- ``none``: run to the end and print how many ``os.replace`` calls it made.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from invkit import cli
from invkit.evaluation import store


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    mode, k, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    count = [0]
    real_replace = os.replace

    def replace(src, dst):  # noqa: ANN001
        count[0] += 1
        if mode == "replace" and count[0] == k:
            die()
        real_replace(src, dst)

    os.replace = replace
    if mode == "append":
        appends = [0]
        real_append = store.RunFolder.append

        def append(self, batch):  # noqa: ANN001
            appends[0] += 1
            if appends[0] == k:
                text = "".join(json.dumps({**r, "batch": batch.start}) + "\n" for r in batch.rows)
                with open(self.journal, "a") as f:
                    f.write(text[: len(text) // 2])
                die()
            real_append(self, batch)

        store.RunFolder.append = append
    elif mode == "timer":
        real_open = store.RunFolder.open

        def open_(self, **kw):  # noqa: ANN001
            done = real_open(self, **kw)
            threading.Timer(k / 1000, die).start()
            return done

        store.RunFolder.open = open_
    code = cli.main(args)
    if mode == "none":
        print(f"replaces={count[0]}")
    return code


if __name__ == "__main__":
    sys.exit(main())
