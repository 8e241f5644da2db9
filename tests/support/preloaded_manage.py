"""``manage.py`` in a process that loads TikTokLive before it knows where TikTok is.

A test that starts the simulator and then a capture pointed at it would wait for two
TikTokLive imports in a row (seconds each: the simulator's, then the capture's). Run
as ``python tests/support/preloaded_manage.py`` at the same time as the simulator, this
process imports TikTokLive — a library, which reads no setting of ours at import — then
reads one JSON line on stdin, ``{"argv": [...], "env": {...}}`` (the simulator's URLs,
once its ready line came), and runs ``manage.py`` with that argv and those variables
added, exactly as ``python manage.py ...`` would: the project, Django and its settings
are imported only then. An empty stdin (the test gave up) exits with 3.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# As for ``python manage.py``: the repository first on the path, not this folder (whose
# capture.py or servers.py would shadow nothing today, but should never get the chance).
sys.path[0] = str(ROOT)

import TikTokLive  # noqa: E402, F401 - the slow import this process exists to do early


def main() -> int:
    line = sys.stdin.readline()
    if not line:
        return 3
    request = json.loads(line)
    os.environ.update(request["env"])
    sys.argv = ["manage.py", *request["argv"]]
    runpy.run_path(str(ROOT / "manage.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
