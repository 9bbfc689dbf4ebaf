"""Policy files: a duplicate key is refused, and every error names the line of the node that is wrong."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from policies.model import Policy
from router.cli import main
from router.policy_source import PolicyReloader

DEFAULT = resources.files("policies").joinpath("default.yaml").read_text()


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    return result.exit_code, result.output


def test_unknown_provider_is_reported_on_its_own_line(tmp_path: Path) -> None:
    """The typo sits deep in the file; the report must not point at the document's first key."""
    lines = DEFAULT.splitlines()
    typo_at = max(i for i, line in enumerate(lines) if line.strip() == "route: gemini")
    lines[typo_at] = lines[typo_at].replace("gemini", "gemnii")
    code, output = _check(tmp_path, "\n".join(lines) + "\n")
    assert code == 1
    assert f"line {typo_at + 1}, column 12: rules." in output and ".route:" in output and "'gemnii'" in output
    assert "(top level)" not in output


@pytest.mark.parametrize(
    ("tail", "needle", "where"),
    [
        (
            "experiments:\n  - name: e\n    arms:\n      - {name: a, weight: 1, route: local}\n"
            "      - name: b\n        weight: 1\n        route: gemini\n        fallbacks: [local, lcoal]\n",
            "fallbacks: [local, lcoal]",
            "experiments.0.arms.1.fallbacks.1",
        ),
        ("shadows:\n  - name: s\n    fraction: 0.5\n    provider: opneai\n", "provider: opneai", "shadows.0.provider"),
        (
            "experiments:\n  - name: e\n    arms:\n      - {name: a, weight: 1, route: local}\n"
            "      - name: a\n        weight: 1\n        route: gemini\n",
            "- name: a",
            "experiments.0.arms.1.name",
        ),
        ("breaker:\n  window: 20\n  cool_down: 5\n", "cool_down: 5", "breaker.cool_down"),
    ],
)
def test_errors_point_at_the_node_that_is_wrong(tmp_path: Path, tail: str, needle: str, where: str) -> None:
    text = DEFAULT + tail
    code, output = _check(tmp_path, text)
    line = max(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
    assert code == 1 and f"line {line}, " in output and where in output, output


def test_duplicate_key_is_refused_at_the_second_one(tmp_path: Path) -> None:
    text = DEFAULT + "rules:\n  - name: everything-local\n    route: local\n"
    code, output = _check(tmp_path, text)
    second = len(DEFAULT.splitlines()) + 1
    assert code == 1 and f"line {second}, column 1" in output and 'duplicate key "rules"' in output
    assert _line_of(text, "rules:") < second, "the first rules: is earlier"


def test_duplicate_key_inside_a_rule_is_refused(tmp_path: Path) -> None:
    text = DEFAULT.replace("    route: local\n", "    route: local\n    route: gemini\n", 1)
    code, output = _check(tmp_path, text)
    second = text.splitlines().index("    route: local") + 2  # the injected line, just after the first route
    assert code == 1 and f"line {second}, column 5" in output and '"route"' in output


def test_bool_feature_needs_a_boolean(tmp_path: Path) -> None:
    """YAML 1.2 reads ``yes`` as a string: a condition that could never match is refused, not ignored."""
    text = DEFAULT.replace("{text_in_output: true}", "{text_in_output: yes}")
    code, output = _check(tmp_path, text)
    assert code == 1 and f"line {_line_of(text, 'text_in_output: yes')}, " in output and "true or false" in output


def test_reload_refuses_a_duplicate_key_and_keeps_the_running_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT)
    applied: list[Policy] = []
    reloader = PolicyReloader(path, applied.append)
    path.write_text(DEFAULT + "default_route: local\n")
    assert reloader.reload() is False and applied == []
    path.write_text(DEFAULT.replace("default_route: openai-images", "default_route: local"))
    assert reloader.reload() is True and applied[0].default_route == "local"
