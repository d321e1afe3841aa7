"""`mlzen stack`, `mlzen component` and `mlzen secret`, driven like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlzen import Client
from mlzen.cli.main import cli
from mlzen.config import load_settings
from mlzen.secrets import get_secret
from mlzen.stack import Stack, load_stack
from tests.cli import run_main

TARGET = "tests.unit.cli.pipelines_for_cli:arithmetic"


def ok(*args: str, input: str | None = None) -> str:
    code, out, err = run_main(*args, input=input)
    assert code == 0, err
    return out


def fails(*args: str, culprit: str) -> str:
    """Run a command that must fail as a user error: exit 2, one line naming the culprit."""
    code, _, err = run_main(*args)
    assert code == 2, err
    assert culprit in err, err
    assert "Traceback" not in err
    return err


def other_stack(project: Path) -> None:
    ok("component", "register", "artifact_store", "elsewhere", "--flavor", "local",
       "--path", "other/artifacts")  # fmt: skip
    ok("component", "register", "metadata_store", "otherdb", "-f", "sql",
       "--url=sqlite:///other/runs.db")  # fmt: skip
    ok("stack", "register", "other", "-o", "local", "-a", "elsewhere", "-m", "otherdb")


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["stack"],
        ["stack", "register"],
        ["stack", "list"],
        ["stack", "describe"],
        ["stack", "set"],
        ["stack", "delete"],
        ["component"],
        ["component", "register"],
        ["component", "list"],
        ["component", "describe"],
        ["component", "delete"],
        ["secret"],
        ["secret", "set"],
        ["secret", "list"],
        ["secret", "delete"],
    ],
)
def test_every_command_has_a_summary_and_an_example(command) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: mlzen " + command[0] in result.output


def test_top_level_help_lists_the_groups() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    assert all(name in out for name in ("stack", "component", "secret"))


# -- components -----------------------------------------------------------------------------


def test_component_register_parses_values_and_validates_them(project: Path) -> None:
    out = ok("component", "register", "orchestrator", "procs", "--flavor", "local",
             "--executor", "processes", "--max-workers", "2")  # fmt: skip
    assert out.strip() == "Registered orchestrator 'procs' (flavor local)."
    # JSON values are typed; a string option keeps '123' as text.
    ok("component", "register", "artifact_store", "numbers", "--flavor", "local", "--path", "123")
    listed = json.loads(ok("component", "list", "--json"))
    configs = {(c["kind"], c["name"]): c["config"] for c in listed}
    assert configs[("orchestrator", "procs")] == {"executor": "processes", "max_workers": 2}
    assert configs[("artifact_store", "numbers")] == {"path": "123"}


@pytest.mark.parametrize(
    ("args", "culprits"),
    [
        (["--max_workers", "-1"], ["'max_workers'", "greater than or equal to 0"]),
        (["--max_workers", "lots"], ["'max_workers'", "valid integer"]),
        (["--executor", "gpu"], ["'executor'", "'threads' or 'processes'"]),
        (["--workers", "2"], ["no option 'workers'", "executor, max_workers"]),
        (["--executor"], ["'--executor' needs a value"]),
        (["threads"], ["Unexpected argument 'threads'"]),
        (["--executor", "threads", "--executor", "threads"], ["'--executor' is given twice"]),
    ],
)
def test_component_register_rejects_bad_config_at_registration(project, args, culprits) -> None:
    err = fails("component", "register", "orchestrator", "o", "--flavor", "local", *args,
                culprit=culprits[0])  # fmt: skip
    assert all(c in err for c in culprits)
    assert [c["name"] for c in json.loads(ok("component", "list", "orchestrator", "--json"))] == [
        "local"
    ]


def test_component_register_other_errors(project: Path) -> None:
    fails("component", "register", "orchestrator", "o", "--flavor", "k8s",
          culprit="No orchestrator flavor named 'k8s'")  # fmt: skip
    fails("component", "register", "tracker", "o", "--flavor", "local", culprit="'tracker'")
    fails("component", "register", "orchestrator", "local", "--flavor", "local",
          culprit="'local' is the built-in orchestrator")  # fmt: skip
    fails("component", "register", "metadata_store", "pg", "--flavor", "sql",
          "--url", "nope://u:hunter2@h/db", culprit="no database dialect 'nope'")  # fmt: skip
    code, _, err = run_main("component", "register", "metadata_store", "pg", "--flavor", "sql",
                            "--url", "nope://u:hunter2@h/db")  # fmt: skip
    assert "hunter2" not in err
    ok("component", "register", "orchestrator", "o", "--flavor", "local")
    err = fails("component", "register", "orchestrator", "o", "--flavor", "local",
                culprit="'o' is already registered")  # fmt: skip
    assert "add --replace to overwrite it" in err and "replace=True" not in err
    ok("component", "register", "orchestrator", "o", "--flavor", "local", "--max_workers", "1",
       "--replace")  # fmt: skip


def test_component_list_describe_and_delete(project: Path) -> None:
    ok("component", "register", "metadata_store", "pg", "--flavor", "sql",
       "--url", "postgresql+psycopg://me:hunter2@db/mlzen")  # fmt: skip
    table = ok("component", "list")
    assert "pg" in table and "local (built-in)" in table and "hunter2" not in table
    assert "me:***@db" in table
    only = json.loads(ok("component", "list", "metadata_store", "--json"))
    assert [(c["name"], c["builtin"]) for c in only] == [("local", True), ("pg", False)]

    described = json.loads(ok("component", "describe", "metadata_store", "pg", "--json"))
    assert described["config"] == {"url": "postgresql+psycopg://me:***@db/mlzen"}
    assert described["stacks"] == [] and described["flavor"] == "sql"
    text = ok("component", "describe", "metadata_store", "pg")
    assert "flavor" in text and "sql" in text and "hunter2" not in text
    fails("component", "describe", "metadata_store", "nope",
          culprit="No metadata_store component named 'nope'")  # fmt: skip

    ok("stack", "register", "s", "-o", "local", "-a", "local", "-m", "pg")
    err = fails("component", "delete", "metadata_store", "pg", culprit="used by stack 's'")
    assert "mlzen stack delete s" in err
    ok("stack", "delete", "s")
    assert ok("component", "delete", "metadata_store", "pg").strip() == (
        "Deleted metadata_store 'pg'."
    )
    fails("component", "delete", "metadata_store", "pg", culprit="'pg'")
    fails("component", "delete", "orchestrator", "local", culprit="cannot be deleted")


# -- stacks ---------------------------------------------------------------------------------


def test_stack_register_list_describe_set_delete(project: Path) -> None:
    listed = json.loads(ok("stack", "list", "--json"))
    assert [(s["name"], s["active"]) for s in listed] == [("local", True)]

    other_stack(project)
    fails("stack", "register", "bad", "-o", "ray", "-a", "local",
          culprit="No orchestrator component named 'ray'")  # fmt: skip
    fails("stack", "register", "bad", "-o", "local", culprit="-a")
    err = fails("stack", "register", "other", "-o", "local", "-a", "local",
                culprit="stack named 'other' is already registered")  # fmt: skip
    assert "add --replace to overwrite it" in err and "replace=True" not in err

    table = ok("stack", "list")
    lines = {line.lstrip("* ").split()[0]: line for line in table.splitlines()[1:]}
    assert lines["local"].startswith("*") and not lines["other"].startswith("*")
    assert "elsewhere" in lines["other"] and "otherdb" in lines["other"]

    assert ok("stack", "set", "other").strip() == "Active stack: other."
    listed = json.loads(ok("stack", "list", "--json"))
    assert [(s["name"], s["active"]) for s in listed] == [("local", False), ("other", True)]
    assert listed[1]["components"] == {
        "orchestrator": "local",
        "artifact_store": "elsewhere",
        "metadata_store": "otherdb",
        "model_deployer": "local",
    }
    described = json.loads(ok("stack", "describe", "--json"))
    assert described["name"] == "other" and described["active"]
    assert described["components"]["artifact_store"] == {
        "name": "elsewhere",
        "flavor": "local",
        "config": {"path": "other/artifacts"},
    }
    text = ok("stack", "describe", "local")
    assert text.startswith("Stack 'local'\n") and "executor=threads" in text
    fails("stack", "describe", "nope", culprit="No stack named 'nope'")
    fails("stack", "set", "nope", culprit="No stack named 'nope'")

    fails("stack", "delete", "other", culprit="'other' is the active stack")
    fails("stack", "delete", "local", culprit="'local' is the built-in stack")
    fails("stack", "delete", "nope", culprit="No stack named 'nope'")
    out = ok("stack", "delete", "other", "--force")
    assert out.strip() == "Deleted stack 'other'. Active stack: local."
    assert [s["name"] for s in json.loads(ok("stack", "list", "--json"))] == ["local"]


def test_stack_register_set_and_replace(project: Path) -> None:
    ok("component", "register", "orchestrator", "procs", "--flavor", "local",
       "--executor", "processes")  # fmt: skip
    out = ok("stack", "register", "p", "-o", "procs", "-a", "local", "--set")
    assert "Active stack: p." in out
    ok("stack", "register", "p", "-o", "local", "-a", "local", "--replace")
    assert load_stack("p").components["orchestrator"] == "local"


def test_stack_set_warns_when_mlzen_stack_wins(project, monkeypatch) -> None:
    other_stack(project)
    monkeypatch.setenv("MLZEN_STACK", "local")
    code, out, err = run_main("stack", "set", "other")
    assert code == 0 and "MLZEN_STACK" in err and "'local'" in err


def test_stack_set_checks_the_stack_loads(project: Path) -> None:
    ok("component", "register", "artifact_store", "a", "--flavor", "local",
       "--path", "{{ secrets.nowhere.dir }}")  # fmt: skip
    ok("stack", "register", "s", "-o", "local", "-a", "a")
    fails("stack", "set", "s", culprit="secret 'nowhere'")
    assert json.loads(ok("stack", "describe", "--json"))["name"] == "local"


def mlzen(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlzen", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def test_mlzen_stack_selects_the_stack_for_one_command(project: Path) -> None:
    other_stack(project)
    cwd = Path(__file__).parents[3]  # the repository, so the target module imports
    result = mlzen("run", TARGET, "-p", "count=4", cwd=cwd, env={"MLZEN_STACK": "other"})
    assert result.returncode == 0, result.stderr
    other = Client(load_stack("other"))
    run = other.get_pipeline_run("latest")
    assert run.stack == "other"
    assert run.steps["summed"].outputs["total"].load() == 6.0
    assert Path(run.steps["summed"].outputs["total"].uri).is_relative_to(project / "other")
    assert Client(Stack(load_settings())).list_pipeline_runs() == []

    listed = mlzen("runs", "list", "--json", cwd=cwd, env={"MLZEN_STACK": "other"})
    assert [r["stack"] for r in json.loads(listed.stdout)] == ["other"]
    assert json.loads(mlzen("runs", "list", "--json", cwd=cwd).stdout) == []
    unknown = mlzen("runs", "list", cwd=cwd, env={"MLZEN_STACK": "ghost"})
    assert unknown.returncode == 2 and "MLZEN_STACK names stack 'ghost'" in unknown.stderr


# -- secrets --------------------------------------------------------------------------------


def test_secret_set_list_delete(project: Path) -> None:
    out = ok("secret", "set", "aws", "key_id=AKIA1", "secret=s3cr3t=with=equals")
    assert out.strip() == "Created secret 'aws' (key_id, secret)."
    assert get_secret("aws") == {"key_id": "AKIA1", "secret": "s3cr3t=with=equals"}
    # A key without a value is asked for, hidden.
    code, out, err = run_main("secret", "set", "pg", "password", input="typed-pw\n")
    assert code == 0 and "Created secret 'pg'" in out and "typed-pw" not in out + err
    assert get_secret("pg") == {"password": "typed-pw"}
    assert "Updated secret 'pg'" in ok("secret", "set", "pg", "password=new")

    table = ok("secret", "list")
    assert "aws" in table and "key_id, secret" in table
    assert not any(v in table for v in ("AKIA1", "s3cr3t", "new"))
    listed = json.loads(ok("secret", "list", "--json"))
    assert [(s["name"], s["keys"]) for s in listed] == [
        ("aws", ["key_id", "secret"]),
        ("pg", ["password"]),
    ]
    assert "AKIA1" not in json.dumps(listed)

    ok("component", "register", "metadata_store", "db", "--flavor", "sql",
       "--url", "postgresql://me:{{ secrets.pg.password }}@db/x")  # fmt: skip
    fails("secret", "delete", "pg", culprit="referenced by the metadata_store 'db'")
    assert ok("secret", "delete", "aws").strip() == "Deleted secret 'aws'."
    fails("secret", "delete", "aws", culprit="No secret named 'aws'")


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["bad name", "k=v"], "'bad name'"),
        (["ok", "bad.key=v"], "'bad.key'"),
        (["ok", "k=1", "k=2"], "'k' of secret 'ok' is given twice"),
    ],
)
def test_secret_set_errors(project, args, culprit) -> None:
    fails("secret", "set", *args, culprit=culprit)


def test_secret_list_with_the_wrong_key_is_a_clear_error(project, monkeypatch) -> None:
    ok("secret", "set", "aws", "secret=v")
    from cryptography.fernet import Fernet

    monkeypatch.setenv("MLZEN_SECRETS_KEY", Fernet.generate_key().decode())
    fails("secret", "list", culprit="Secret 'aws' cannot be decrypted")
