"""Every example of README.md and docs/ runs, twice in a row, in a fresh project.

Sybil collects the examples (the ``conftest.py`` at the root of the repository hands it
the Markdown files): fenced ``python`` and ``console`` blocks run, each a test, in page
order; an ``output`` block must match what the example just before it printed
(``doctest`` rules: ``...`` matches anything); ``<!-- skip: next "why" -->`` skips the
example after it (for what cannot run here: a Ray cluster, an S3 bucket, ``pip
install``). docs/contributing.md tells writers these rules.

Each page runs in a fresh project folder (holding a copy of ``examples/``) through one
worker process per pass (``tests/docs_worker.py``): the first pass, then a second in a
new process over the same folder, so every Python example must be re-runnable. Console
examples run in the first pass only: each command is a process of its own, and running
them twice would double what the docs add to the suite's time. The ports the pages name
are replaced with free ones, so that test sessions running at the same time never
collide.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

from tests.integration.services import free_port

REPO = Path(__file__).parents[1]
WORKER = Path(__file__).with_name("docs_worker.py")
#: The ports pages name (the server's default, a deployment's, the end-to-end example's).
DOCUMENTED_PORTS = (8237, 8000, 8300)
#: What commands that would ask a user read instead (see docs/contributing.md).
ANSWERS = {"MLZEN_NEW_USER_PASSWORD": "a-long-password"}
EXAMPLE_TIMEOUT = 240.0
_OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass
class PageRun:
    """One page's project folder and the worker of its current pass."""

    path: Path
    folder: Path
    ports: dict[int, int]
    document: Document | None = None
    worker: subprocess.Popen[bytes] | None = None
    requests: Any = None
    replies: Any = None
    failed: str | None = None
    #: Where the last example that ran (and succeeded) starts, and what it printed.
    last: tuple[int, str] | None = None
    folders: list[Path] = field(default_factory=list)

    def substitute(self, text: str) -> str:
        for documented, free in self.ports.items():
            text = text.replace(str(documented), str(free))
        return text

    def start(self, document: Document) -> None:
        """Begin a pass over the page: a new worker in the same folder."""
        self.stop()
        self.document, self.failed, self.last = document, None, None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLZEN_")}
        env.update(ANSWERS)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["MLZEN_TEST_SESSION_POSTGRES_URL"] = os.environ.get(
            "MLZEN_TEST_SESSION_POSTGRES_URL", ""
        )
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        self.worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(request_read), str(reply_write)],
            cwd=self.folder,
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(request_read, reply_write),
            start_new_session=True,
        )
        os.close(request_read)
        os.close(reply_write)
        self.requests = os.fdopen(request_write, "w")
        self.replies = os.fdopen(reply_read)

    def send(self, kind: str, example: Example) -> dict[str, Any]:
        assert self.worker is not None
        request = {
            "kind": kind,
            "source": self.substitute(str(example.parsed)),
            "path": example.path,
            "line": example.line + 1,  # the fence's line, then the code
        }
        if kind == "file":
            request["name"], request["source"] = example.parsed
        self.requests.write(json.dumps(request) + "\n")
        self.requests.flush()
        reply = _read_line(self.replies, EXAMPLE_TIMEOUT)
        if reply is None:
            self.stop()
            return {
                "ok": False,
                "error": f"the worker died or took over {EXAMPLE_TIMEOUT:.0f}s",
                "stdout": "",
                "stderr": "",
            }
        return json.loads(reply)  # type: ignore[no-any-return]

    def stop(self) -> None:
        """End the worker of the current pass (it exits when its input closes)."""
        if self.worker is None:
            return
        self.requests.close()
        try:
            self.worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        self.replies.close()
        self.worker = None

    def clean_up(self) -> None:
        """Stop what the page's examples left running, should one of them have failed
        before the example that stops it: servers and deployments started from its
        project folders."""
        self.stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLZEN_")}

        def mlzen(project: Path, *args: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "mlzen", *args],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            ).stdout

        for marker in self.folder.parent.rglob(".mlzen"):
            if (marker / "server.json").exists():
                mlzen(marker.parent, "server", "down")
            if (marker / "deployments").exists():
                for deployment in json.loads(mlzen(marker.parent, "deployments", "list", "--json")):
                    if deployment["status"] == "running":
                        mlzen(marker.parent, "deployments", "stop", deployment["name"])


def _read_line(stream: Any, timeout: float) -> str | None:
    import select

    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return None
    line = stream.readline()
    return line or None


_pages: dict[str, PageRun] = {}


def _page(example: Example) -> PageRun:
    page = _pages.get(example.path)
    if page is None:
        factory: pytest.TempPathFactory = example.namespace["tmp_path_factory"]
        folder = factory.mktemp("docs") / "project"
        shutil.copytree(
            REPO / "examples",
            folder / "examples",
            ignore=shutil.ignore_patterns(".mlzen", "__pycache__", ".ipynb_checkpoints"),
        )
        ports = {port: free_port() for port in DOCUMENTED_PORTS}
        page = _pages[example.path] = PageRun(Path(example.path), folder, ports)
    if page.document is not example.document:
        page.start(example.document)
    return page


def _where(example: Example) -> str:
    return f"{Path(example.path).relative_to(REPO)}:{example.line}"


def _runner(kind: str) -> Callable[[Example], str | None]:
    def evaluate(example: Example) -> str | None:
        page = _page(example)
        if page.failed:
            pytest.skip(f"an earlier example of this page failed ({page.failed})")
        reply = page.send(kind, example)
        if not reply["ok"]:
            page.failed = _where(example)
            return (
                f"{kind} example at {_where(example)} failed:\n{reply['error']}\n"
                f"--- its stdout ---\n{reply['stdout'][-4000:]}\n"
                f"--- its stderr ---\n{reply['stderr'][-4000:]}"
            )
        page.last = (example.start, reply["stdout"])
        return None

    return evaluate


def _check_output(example: Example) -> str | None:
    page = _page(example)
    before = [r for start, r in example.document.regions if start < example.start]
    if page.failed or page.last is None or not before or before[-1].start != page.last[0]:
        pytest.skip("the example this output belongs to did not run")
    want = page.substitute(example.parsed)
    got = page.last[1]
    if doctest.OutputChecker().check_output(want, got, _OUTPUT_FLAGS):
        return None
    return f"The output of the example before {_where(example)} differs.\n" + (
        doctest.OutputChecker().output_difference(
            doctest.Example("", want), got, _OUTPUT_FLAGS | doctest.REPORT_NDIFF
        )
    )


def _teardown(namespace: dict[str, Any]) -> None:
    """After a page's examples (pytest tears its file down once both passes ran)."""
    while _pages:
        _pages.popitem()[1].clean_up()


class FileBlockParser:
    """Fences with a title (```` ```python title="pipeline.py" ````) are files the page
    has the reader save: written to the current folder, not run."""

    info = re.compile(r'(?P<language>\w+) title="(?P<name>[^"]+)"')

    def __init__(self, evaluator: Callable[[Example], str | None]) -> None:
        self.lexer = FencedCodeBlockLexer(
            language=r".+", mapping={"language": "arguments", "source": "source"}
        )
        self.evaluator = evaluator

    def __call__(self, document: Document) -> Iterator[Region]:
        for region in self.lexer(document):
            match = self.info.fullmatch(region.lexemes["arguments"])
            if match:
                region.parsed = (match["name"], str(region.lexemes["source"]))
                region.evaluator = self.evaluator
                yield region


def _first_pass_only(example: Example) -> None:
    pytest.skip("console examples run in the first pass only (they cost a process each)")


def _parsers(*, console: bool) -> list[Any]:
    return [
        SkipParser(),
        CodeBlockParser("python", _runner("python")),
        CodeBlockParser("console", _runner("console") if console else _first_pass_only),
        FileBlockParser(_runner("file")),
        CodeBlockParser("output", _check_output),
    ]


_PATTERNS = ["README.md", "docs/*.md", "docs/*/*.md"]
_OPTIONS: dict[str, Any] = {
    "patterns": _PATTERNS,
    "path": str(REPO),
    "fixtures": ["tmp_path_factory"],
    "teardown": _teardown,
}

first = Sybil(_parsers(console=True), name="first-run", **_OPTIONS)
second = Sybil(_parsers(console=False), name="second-run", **_OPTIONS)
#: The pytest hook (``conftest.py`` at the root of the repository uses it).
pytest_collect_file = (first + second).pytest()
