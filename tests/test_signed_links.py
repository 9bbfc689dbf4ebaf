"""Signed, expiring file links (``?url_style=signed``): a browser shows a result without the API key; a link
expires, stops with its session, and a tampered one is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from router.cli import main
from router.errors import ApiError
from router.links import LinkSigner, parse_keys
from tests.conftest import fixture_bytes

COFFEE = fixture_bytes("coffee.png")
MASK = fixture_bytes("coffee_background_mask.png")
SHA = "a" * 64


def test_a_link_verifies_until_it_expires() -> None:
    signer = LinkSigner(parse_keys("k1:secret-one"), ttl_s=60)
    q = parse_qs(signer.query("acme", "ses_1", SHA, now=1000))
    assert (q["tenant"], q["session"], q["expires"]) == (["acme"], ["ses_1"], ["1060"])
    assert q["signature"][0].startswith("k1.")
    signer.verify("acme", "ses_1", SHA, 1060, q["signature"][0], now=1059)
    with pytest.raises(ApiError) as expired:
        signer.verify("acme", "ses_1", SHA, 1060, q["signature"][0], now=1061)
    assert (expired.value.status, expired.value.code) == (403, "link_expired")


@pytest.mark.parametrize("change", ["tenant", "session", "file", "expires", "mac", "kid"])
def test_any_change_to_a_link_breaks_its_signature(change: str) -> None:
    signer = LinkSigner(parse_keys("k1:secret-one"), ttl_s=60)
    sig = parse_qs(signer.query("acme", "ses_1", SHA, now=1000))["signature"][0]
    tenant, session, file_id, expires = "acme", "ses_1", SHA, 1060
    if change == "tenant":
        tenant = "globex"
    elif change == "session":
        session = "ses_2"
    elif change == "file":
        file_id = "b" * 64
    elif change == "expires":
        expires = 999_999
    elif change == "mac":
        sig = sig[:-2] + ("AA" if not sig.endswith("AA") else "BB")
    else:
        sig = "k9." + sig.split(".", 1)[1]
    with pytest.raises(ApiError) as bad:
        signer.verify(tenant, session, file_id, expires, sig, now=1001)
    assert (bad.value.status, bad.value.code) == (403, "invalid_signature")


def test_keys_rotate_the_new_key_signs_and_the_old_still_verifies() -> None:
    old = LinkSigner(parse_keys("k1:old"), ttl_s=60)
    rotated = LinkSigner(parse_keys("k2:new,k1:old"), ttl_s=60)
    old_sig = parse_qs(old.query("acme", "ses_1", SHA, now=1000))["signature"][0]
    rotated.verify("acme", "ses_1", SHA, 1060, old_sig, now=1001)
    assert parse_qs(rotated.query("acme", "ses_1", SHA, now=1000))["signature"][0].startswith("k2.")
    retired = LinkSigner(parse_keys("k2:new"), ttl_s=60)
    with pytest.raises(ApiError):
        retired.verify("acme", "ses_1", SHA, 1060, old_sig, now=1001)


def test_lifetime_is_per_tenant() -> None:
    signer = LinkSigner(parse_keys("k1:s"), ttl_s=3600, ttl_by_tenant={"acme": 60})
    assert parse_qs(signer.query("acme", "ses_1", SHA, now=0))["expires"] == ["60"]
    assert parse_qs(signer.query("globex", "ses_1", SHA, now=0))["expires"] == ["3600"]


@pytest.mark.parametrize("spec", ["", "nokey", "k1:", ":secret", "k.1:secret"])
def test_a_malformed_key_list_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="EDITGATE_LINK_KEYS"):
        parse_keys(spec)


def _key(data_dir: Path) -> str:
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "acme", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


@pytest.fixture()
def keyed(make_server: Callable[..., str], tmp_path: Path) -> tuple[str, dict[str, str]]:
    data_dir = tmp_path / "data"
    url = make_server(data_dir=data_dir, link_keys="k1:test-secret", link_ttl_by_tenant={"acme": 2})
    return url, {"Authorization": f"Bearer {_key(data_dir)}"}


def test_signed_links_open_without_the_key_expire_and_stop_with_their_session(
    keyed: tuple[str, dict[str, str]],
) -> None:
    url, auth = keyed
    with httpx.Client(base_url=url, timeout=60) as c:
        plain = c.post("/v1/edits", headers=auth, files={"image": ("c.png", COFFEE), "mask": ("m.png", MASK)},
                       data={"prompt": "remove the mug", "provider": "local"}).json()  # fmt: skip
        assert "signature" not in plain["images"][0]["url"]
        assert c.get(plain["images"][0]["url"]).status_code == 401  # an API URL needs the key

        body = c.get(f"/v1/edits/{plain['id']}", params={"url_style": "signed"}, headers=auth).json()
        link = body["images"][0]["url"]
        assert urlsplit(link).path == f"/v1/files/{plain['images'][0]['sha256']}"
        assert "signature=k1." in link and "signature=" in body["inputs"]["source"]["url"]
        shown = c.get(link)  # no Authorization header: what a browser's <img> sends
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"

        q = parse_qs(urlsplit(link).query)
        tampered = c.get(urlsplit(link).path, params={**{k: v[0] for k, v in q.items()}, "tenant": "globex"})
        assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "invalid_signature"

        time.sleep(max(0.0, int(q["expires"][0]) - time.time()) + 1.1)  # acme's links live 2 s
        expired = c.get(link)
        assert expired.status_code == 403 and expired.json()["error"]["code"] == "link_expired"

        fresh = c.post("/v1/edits", params={"url_style": "signed"}, headers=auth,
                       files={"image": ("c.png", COFFEE), "mask": ("m.png", MASK)},
                       data={"prompt": "remove the plate", "provider": "local"}).json()  # fmt: skip
        fresh_link = fresh["images"][0]["url"]
        assert c.get(fresh_link).status_code == 200
        # the same bytes may live on in the first session (files are content-addressed): the link is for this one
        session_view = c.get(f"/v1/sessions/{fresh['session_id']}", params={"url_style": "signed"}, headers=auth)
        assert f"session={fresh['session_id']}" in str(session_view.json())
        assert c.delete(f"/v1/sessions/{fresh['session_id']}", headers=auth).status_code == 204
        assert c.get(fresh_link).status_code == 404


def test_url_style_other_than_api_or_signed_is_a_422(keyed: tuple[str, dict[str, str]]) -> None:
    url, auth = keyed
    r = httpx.get(f"{url}/v1/sessions", params={"url_style": "public"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["param"] == "url_style"
