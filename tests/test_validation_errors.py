"""Litestar's own request validation answers in editgate's error shape, naming the field at fault."""

from __future__ import annotations

import httpx
import pytest

NO_EDIT = "/v1/edits/ver_" + "0" * 32 + "/feedback"
SESSION_COMPARE = "/v1/sessions/ses_" + "0" * 32 + "/compare"


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({}, "verdict", "send a verdict"),
        ({"rating": 9}, "rating", "less than or equal to 5"),
        ({"verdict": "maybe"}, "verdict", "'accepted' or 'rejected'"),
        ({"verdict": "accepted", "rating": "five"}, "rating", "valid integer"),
        ({"rating": 3, "reason": "x" * 2001}, "reason", "at most 2000"),
    ],
)
def test_feedback_validation_names_the_field(client: httpx.Client, body: dict, param: str, needle: str) -> None:
    r = client.post(NO_EDIT, json=body)
    error = r.json()["error"]
    assert r.status_code == 400 and error["code"] == "invalid_parameter" and error["param"] == param
    assert needle in error["message"] and "Validation failed" not in error["message"]


def test_every_problem_is_listed_and_no_input_echoed(client: httpx.Client) -> None:
    r = client.post(NO_EDIT, json={"verdict": "secret-prompt-text", "rating": 0})
    error = r.json()["error"]
    assert error["param"] == "verdict" and "rating:" in error["message"] and "verdict:" in error["message"]
    assert "secret-prompt-text" not in r.text


@pytest.mark.parametrize(
    ("query", "param"),
    [("?a=0", "b"), ("?a=x&b=1", "a"), ("?a=0&b=-1", "b")],
)
def test_query_parameter_errors_name_the_parameter(client: httpx.Client, query: str, param: str) -> None:
    r = client.get(SESSION_COMPARE + query)
    error = r.json()["error"]
    assert r.status_code == 400 and error["code"] == "invalid_parameter" and error["param"] == param, r.text
