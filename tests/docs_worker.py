"""Runs one page's examples, in order, in one process: started by ``tests/docs_examples.py``
in a fresh project folder, it reads one example per line from the file descriptor given
as its first argument (JSON: ``kind`` ``python``, ``console`` or ``file``, ``source``,
``path``, ``line``, and for a file its ``name``) and answers each on the second
(JSON: ``ok``, ``error``, ``stdout``, ``stderr``). Its standard input is empty, so an
example that asks a question waits for no one.

Python examples share one namespace, as the cells of a notebook do. Console examples run
in bash (``-e``: the first failing command fails the example); the folder and exported
variables one leaves carry on to the next, as in one terminal. A file example is written
to that folder. Everything an example
writes to file descriptors 1 and 2, its subprocesses included, is its output.
Standard library only: this runs with the interpreter under test, before mlzen loads.
"""

from __future__ import annotations

import json
import linecache
import os
import shlex
import subprocess
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any

#: Written after a console example: its folder and exported variables, for the next one.
_STATE_TRAILER = 'pwd > "$MLZEN_DOCS_STATE/cwd"; export -p > "$MLZEN_DOCS_STATE/env"'
#: Names the command that failed (bash -e stops there, silently).
_ON_ERROR = "trap 'echo \"mlzen docs: this command failed: $BASH_COMMAND\" >&2' ERR"


class Captured:
    """File descriptors 1 and 2 sent to two temporary files while an example runs."""

    def __enter__(self) -> Captured:
        sys.stdout.flush()
        sys.stderr.flush()
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        self.saved = [os.dup(1), os.dup(2)]
        for fd, file in zip((1, 2), self.files, strict=True):
            os.dup2(file.fileno(), fd)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self.stdout, self.stderr = [self._read(file) for file in self.files]

    @staticmethod
    def _read(file: Any) -> str:
        file.seek(0)
        text = file.read().decode(errors="replace")
        file.close()
        return text


class Page:
    """One page's examples: a namespace for its Python, a terminal state for its shell."""

    def __init__(self) -> None:
        # The examples' module is __main__, as a script's is: a run records its steps as
        # __main__:name, and resuming it imports them from there.
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        self.namespace: dict[str, Any] = main.__dict__
        self.state = Path(tempfile.mkdtemp(prefix="mlzen-docs-shell-"))
        self.cwd = Path.cwd()

    def python(self, source: str, path: str, line: int) -> str | None:
        # Padded to the example's line in the page, so tracebacks (and inspect.getsource,
        # which mlzen's cache keys use) find the example where the page has it.
        padded = "\n" * (line - 1) + source
        linecache.cache[path] = (len(padded), None, padded.splitlines(True), path)
        try:
            exec(compile(padded, path, "exec"), self.namespace)  # noqa: S102 (the docs' code)
        except BaseException:  # noqa: BLE001 (any failure of the example is its result)
            return traceback.format_exc()
        return None

    def file(self, source: str, path: str, line: int, name: str) -> str | None:
        target = self.cwd / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
        return None

    def console(self, source: str, path: str, line: int) -> str | None:
        restore = f"cd {shlex.quote(str(self.cwd))}\n"
        if (self.state / "env").exists():
            restore += f"source {shlex.quote(str(self.state / 'env'))}\n"
        script = f"{restore}{_ON_ERROR}\n{source}\n{_STATE_TRAILER}\n"
        env = {**os.environ, "MLZEN_DOCS_STATE": str(self.state)}
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env, check=False)
        if done.returncode != 0:
            return f"{path}:{line}: the console example exited with {done.returncode}"
        self.cwd = Path((self.state / "cwd").read_text().strip())
        return None


def main() -> None:
    # As for `python -c` or a notebook: modules in the current folder import, this one's
    # folder (tests/) is not on the path.
    sys.path[0] = ""
    requests = os.fdopen(int(sys.argv[1]))
    replies = os.fdopen(int(sys.argv[2]), "w")
    page = Page()
    for request in requests:
        example = json.loads(request)
        run = getattr(page, example.pop("kind"))
        with Captured() as captured:
            error = run(**example)
        reply = {
            "ok": error is None,
            "error": error,
            "stdout": captured.stdout,
            "stderr": captured.stderr,
        }
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
