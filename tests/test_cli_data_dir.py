"""The CLI's database commands use the database `serve` uses, or say there is none; `edit` writes where
the user is."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from router.cli import main
from tests.conftest import PG_ADMIN_URL, fixture_bytes

CLEAN_ENV = {"EDITGATE_DATA_DIR": None, "DATABASE_URL": None}


def test_an_upper_case_tenant_is_refused_with_what_is_allowed(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "A", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "lowercase letters, digits" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["keys", "list"], ["keys", "create", "--tenant", "acme"], ["report", "exp"]])
def test_database_commands_do_not_create_a_database_where_none_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner(env=CLEAN_ENV).invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "no editgate database" in result.output and "--data-dir" in result.output, result.output
    assert list(tmp_path.iterdir()) == [], "nothing may be created in the current directory"


def test_database_commands_find_the_servers_data_dir_from_the_environment(
    make_server: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, cwd = tmp_path / "served", tmp_path / "elsewhere"
    url = make_server(data_dir=data_dir)
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    runner = CliRunner(env={**CLEAN_ENV, "EDITGATE_DATA_DIR": str(data_dir)})
    created = runner.invoke(main, ["keys", "create", "--tenant", "envtenant"])
    assert created.exit_code == 0, created.output
    assert list(cwd.iterdir()) == []
    assert "envtenant\t" in runner.invoke(main, ["keys", "list"]).output
    headers = {"Authorization": f"Bearer {created.output.split()[-1]}"}
    assert httpx.get(f"{url}/v1/policy", headers=headers).status_code == 200


def test_edit_without_out_writes_to_the_current_directory(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, cwd = tmp_path / "inputs", tmp_path / "here"
    inputs.mkdir()
    cwd.mkdir()
    (inputs / "coffee.png").write_bytes(fixture_bytes("coffee.png"))
    (inputs / "mask.png").write_bytes(fixture_bytes("coffee_background_mask.png"))
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["edit", str(inputs / "coffee.png"), "--mask", str(inputs / "mask.png"),
                                       "--prompt", "remove the table", "--server", server])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.stdout.strip().splitlines()[-1])["out"])
    assert (cwd / "coffee.edited.png").is_file() and out.resolve() == (cwd / "coffee.edited.png").resolve()
    assert sorted(p.name for p in inputs.iterdir()) == ["coffee.png", "mask.png"]


def test_a_database_url_that_reaches_no_database_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/editgate_missing_{uuid.uuid4().hex[:8]}"
    result = CliRunner(env={**CLEAN_ENV, "DATABASE_URL": url}).invoke(main, ["keys", "list"])
    assert result.exit_code == 1 and "no editgate database at postgresql" in result.output, result.output
    assert "does not exist" in result.output and list(tmp_path.iterdir()) == []
