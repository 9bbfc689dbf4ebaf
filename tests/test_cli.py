"""``editgate edit`` against a live server over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from router.cli import main
from tests.conftest import decode


def test_edit_command_writes_the_result(server: str, fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    result = CliRunner().invoke(
        main,
        [
            "edit",
            str(fixtures_dir / "astronaut.png"),
            "--mask",
            str(fixtures_dir / "astronaut_helmet_mask.png"),
            "--prompt",
            "remove the helmet",
            "--protect",
            "face",
            "--out",
            str(out),
            "--server",
            server,
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["provider"] == "local" and summary["size"] == "512x512"
    assert decode(out.read_bytes()).shape == (512, 512, 3)
    assert result.stderr == "", "no progress noise when the output is not a terminal"


def test_edit_command_reports_api_errors(server: str, fixtures_dir: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["edit", str(fixtures_dir / "coffee.png"), "--prompt", "x", "--protect", "halo", "--server", server],
    )
    assert result.exit_code != 0
    assert "unknown_protect_chip" in result.output


def test_edit_command_reports_unreachable_server(fixtures_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["edit", str(fixtures_dir / "coffee.png"), "--prompt", "x", "--server", "http://127.0.0.1:9"]
    )
    assert result.exit_code != 0 and "could not reach" in result.output


def test_serve_help_lists_options() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--data-dir" in result.output and "--port" in result.output
