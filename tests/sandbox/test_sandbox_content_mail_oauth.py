"""TMDB, Wikipedia, SendGrid, Google/Apple/Facebook sign-in and the control API, through httpx."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import jwt as pyjwt
import pytest
from jose import jwt as jose_jwt

from sandbox.oauth import DEFAULT_FACEBOOK_APP_ID, mint_id_token, register_facebook_token

TMDB_KEY = {"api_key": "0123456789abcdef0123456789abcdef"}


@pytest.fixture
async def http(sandbox):
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as client:
        yield client


# --------------------------------------------------------------------------------------------- TMDB


async def test_tmdb_details_and_credits(http):
    r = await http.get("/tmdb/3/movie/155", params=dict(TMDB_KEY, append_to_response="credits"))
    movie = r.json()
    assert movie["title"] == "The Dark Knight" and movie["genres"][0] == {"id": 18, "name": "Drama"}
    assert movie["credits"]["cast"][0]["character"] == "Bruce Wayne / Batman"
    credits = (await http.get("/tmdb/3/movie/155/credits", params=TMDB_KEY)).json()
    assert credits["cast"][0]["name"] == "Christian Bale" and credits["cast"][0]["id"] == 3894
    assert [c["job"] for c in credits["crew"] if c["name"] == "Christopher Nolan"] == ["Director", "Screenplay"]
    naruto = (await http.get("/tmdb/3/tv/46260", headers={"Authorization": "Bearer eyJ.read.token"})).json()
    assert naruto["origin_country"] == ["JP"] and naruto["original_language"] == "ja"
    assert 16 in [g["id"] for g in naruto["genres"]] and sum(s["episode_count"] for s in naruto["seasons"]) == 220
    agg = (await http.get("/tmdb/3/tv/1396/aggregate_credits", params=TMDB_KEY)).json()
    walter = agg["cast"][0]
    assert (
        walter["roles"]
        == [{"credit_id": walter["roles"][0]["credit_id"], "character": "Walter White", "episode_count": 62}]
        and walter["total_episode_count"] == 62
    )
    person = (await http.get("/tmdb/3/person/3894", params=TMDB_KEY)).json()
    assert person["name"] == "Christian Bale" and "Bruce Wayne" in person["biography"]
    combined = (await http.get("/tmdb/3/person/3894/combined_credits", params=TMDB_KEY)).json()
    assert {c["id"] for c in combined["cast"]} >= {155, 272, 49026}
    assert all(c["media_type"] == "movie" for c in combined["cast"])
    missing = await http.get("/tmdb/3/movie/1", params=TMDB_KEY)
    assert missing.status_code == 404 and missing.json() == {
        "success": False,
        "status_code": 34,
        "status_message": "The resource you requested could not be found.",
    }


async def test_tmdb_search_trending_discover(http):
    multi = (await http.get("/tmdb/3/search/multi", params=dict(TMDB_KEY, query="harry potter"))).json()
    kinds = {(x["media_type"], x.get("title") or x.get("name")) for x in multi["results"]}
    assert ("movie", "Harry Potter and the Philosopher's Stone") in kinds
    person = (await http.get("/tmdb/3/search/person", params=dict(TMDB_KEY, query="radcliffe"))).json()
    assert person["results"][0]["id"] == 10980 and person["results"][0]["known_for"]
    tv = (await http.get("/tmdb/3/search/tv", params=dict(TMDB_KEY, query="avatar"))).json()
    assert tv["results"][0]["name"] == "Avatar: The Last Airbender" and tv["total_results"] == 1
    spirited = (await http.get("/tmdb/3/search/movie", params=dict(TMDB_KEY, query="千と千尋"))).json()
    assert spirited["results"][0]["id"] == 129
    for window in ("day", "week"):
        trend = (await http.get(f"/tmdb/3/trending/all/{window}", params=TMDB_KEY)).json()
        assert len(trend["results"]) == 20 and {x["media_type"] for x in trend["results"]} <= {"movie", "tv", "person"}
    anime = (
        await http.get("/tmdb/3/discover/tv", params=dict(TMDB_KEY, with_genres="16", with_origin_country="JP"))
    ).json()
    assert {x["id"] for x in anime["results"]} == {46260, 1429, 13916, 37854, 31911}
    conf = (await http.get("/tmdb/3/configuration", params=TMDB_KEY)).json()
    assert conf["images"]["secure_base_url"] == "https://image.tmdb.org/t/p/"


async def test_tmdb_paging_through_a_long_popular_list(sandbox, http):
    sandbox.control.tmdb(synthetic_movies=473)
    first = (await http.get("/tmdb/3/movie/popular", params=TMDB_KEY)).json()
    assert first["total_results"] == 27 + 473 and first["total_pages"] == 25 and first["page"] == 1
    assert first["results"][0]["id"] == 155 or first["results"][0]["popularity"] >= first["results"][1]["popularity"]
    ids = []
    for page in range(1, first["total_pages"] + 1):
        body = (await http.get("/tmdb/3/movie/popular", params=dict(TMDB_KEY, page=page))).json()
        ids += [x["id"] for x in body["results"]]
    assert len(ids) == len(set(ids)) == 500 and ids[-1] == 9_000_473
    assert (await http.get("/tmdb/3/movie/9000473", params=TMDB_KEY)).json()["title"] == "Sandbox Movie 00473"
    bad = await http.get("/tmdb/3/movie/popular", params=dict(TMDB_KEY, page=501))
    assert bad.status_code == 400 and bad.json()["status_code"] == 22


async def test_tmdb_auth_and_rate_limit(sandbox, http):
    r = await http.get("/tmdb/3/movie/popular")
    assert r.status_code == 401 and r.json()["status_code"] == 7
    sandbox.control.fault("tmdb", 429, retry_after=2, count=1)
    limited = await http.get("/tmdb/3/movie/popular", params=TMDB_KEY)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["status_code"] == 25
    assert (await http.get("/tmdb/3/movie/popular", params=TMDB_KEY)).status_code == 200
    recorded = sandbox.control.requests(provider="tmdb")
    assert recorded[-1]["query"]["api_key"] == TMDB_KEY["api_key"] and recorded[-2]["status"] == 429


# ---------------------------------------------------------------------------------------- Wikipedia


async def test_wikipedia_summary_redirect_and_404(http):
    r = await http.get("/wikipedia/api/rest_v1/page/summary/The_Dark_Knight")
    assert r.status_code == 200 and "Summary/1.4.2" in r.headers["content-type"]
    body = r.json()
    assert body["type"] == "standard" and body["title"] == "The_Dark_Knight"
    assert body["titles"]["normalized"] == "The Dark Knight" and "Christopher Nolan" in body["extract"]
    assert body["content_urls"]["desktop"]["page"] == "https://en.wikipedia.org/wiki/The_Dark_Knight"
    batman = (await http.get("/wikipedia/api/rest_v1/page/summary/batman")).json()
    assert batman["description"] == "Fictional superhero from DC Comics"
    redirect = await http.get("/wikipedia/api/rest_v1/page/summary/Bruce_Wayne")
    assert redirect.status_code == 302 and redirect.headers["location"] == "Batman"
    followed = await http.get("/wikipedia/api/rest_v1/page/summary/Bruce_Wayne", follow_redirects=True)
    assert followed.json()["title"] == "Batman"
    assert (await http.get("/wikipedia/api/rest_v1/page/summary/Avatar")).json()["type"] == "disambiguation"
    missing = await http.get("/wikipedia/api/rest_v1/page/summary/No_such_page_xyz")
    assert missing.status_code == 404
    assert missing.json()["type"] == "https://mediawiki.org/wiki/HyperSwitch/errors/not_found"


# ----------------------------------------------------------------------------------------- SendGrid


async def test_sendgrid_send_and_list(sandbox, http):
    mail = {
        "personalizations": [{"to": [{"email": "Bruce@Wayne.example"}], "dynamic_template_data": {"code": "482913"}}],
        "from": {"email": "noreply@scenextras.example", "name": "SceneXtras"},
        "subject": "Your code",
        "content": [
            {"type": "text/plain", "value": "Your code is 482913"},
            {"type": "text/html", "value": "<b>482913</b>"},
        ],
    }
    r = await http.post("/sendgrid/v3/mail/send", json=mail, headers={"Authorization": "Bearer SG.key"})
    assert r.status_code == 202 and r.content == b"" and r.headers["x-message-id"]
    emails = sandbox.control.emails(to="bruce@wayne.example")
    assert len(emails) == 1 and emails[0]["text"] == "Your code is 482913" and emails[0]["subject"] == "Your code"
    assert emails[0]["dynamic_template_data"] == {"code": "482913"}
    bad = await http.post(
        "/sendgrid/v3/mail/send",
        headers={"Authorization": "Bearer SG.key"},
        json={"personalizations": [{"to": []}], "from": {}, "content": [{"type": "text/html", "value": ""}]},
    )
    fields = {e["field"] for e in bad.json()["errors"]}
    assert bad.status_code == 400 and {"personalizations.0.to", "from.email", "subject", "content.0.value"} <= fields
    unauth = await http.post("/sendgrid/v3/mail/send", json=mail)
    assert unauth.status_code == 401 and unauth.json()["errors"][0]["message"].startswith("The provided authorization")


# -------------------------------------------------------------------------------------------- OAuth


async def test_google_id_token_verifies_against_jwks(sandbox, http):
    jwks = (await http.get("/oauth/google/jwks")).json()
    assert len(jwks["keys"]) == 2 and all(k["kty"] == "RSA" and k["alg"] == "RS256" for k in jwks["keys"])
    token = mint_id_token("google", "google-sub-1", "diana@example.com", "client-123.apps.googleusercontent.com")
    kid = jose_jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    claims = jose_jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience="client-123.apps.googleusercontent.com",
        issuer="https://accounts.google.com",
        options={"verify_at_hash": False},
    )
    assert claims["sub"] == "google-sub-1" and claims["email_verified"] is True
    # PyJWT fetching the JWKS from its URL works too
    signing_key = pyjwt.PyJWKClient(sandbox.env()["GOOGLE_JWKS_URL"]).get_signing_key_from_jwt(token)
    assert pyjwt.decode(token, signing_key.key, algorithms=["RS256"], audience="client-123.apps.googleusercontent.com")
    expired = mint_id_token("google", "s", "e@x.example", "aud", expires_in=-10)
    with pytest.raises(jose_jwt.ExpiredSignatureError):
        jose_jwt.decode(expired, jwks, algorithms=["RS256"], audience="aud", options={"verify_at_hash": False})
    with pytest.raises(jose_jwt.JWTClaimsError):
        jose_jwt.decode(token, jwks, algorithms=["RS256"], audience="someone-else", options={"verify_at_hash": False})


async def test_apple_token_and_remote_minting(sandbox, http):
    jwks = (await http.get("/oauth/apple/jwks")).json()
    token = mint_id_token("apple", "001234.abcd", "x@privaterelay.appleid.com", "com.scenextras.app", nonce="n1")
    claims = jose_jwt.decode(
        token, jwks, algorithms=["RS256"], audience="com.scenextras.app", issuer="https://appleid.apple.com"
    )
    assert claims["email_verified"] == "true" and claims["is_private_email"] == "true" and claims["nonce"] == "n1"
    remote = sandbox.control.mint_id_token(
        provider="apple", sub="s2", email="a@b.example", audience="com.app", email_verified=False
    )
    assert jose_jwt.decode(remote, jwks, algorithms=["RS256"], audience="com.app")["email_verified"] == "false"
    sandbox.control._call("POST", "/_sandbox/oauth/rotate", json={"providers": ["apple"]})
    rotated = (await http.get("/oauth/apple/jwks")).json()
    with pytest.raises(jose_jwt.JWTError):
        jose_jwt.decode(token, rotated, algorithms=["RS256"], audience="com.scenextras.app")


async def test_facebook_debug_token_and_me(sandbox, http):
    register_facebook_token("EAAB-good", "10150000000000001", email="fb@example.com", name="Peter Parker")
    sandbox.control.facebook_token("EAAB-revoked", "10150000000000002", valid=False)
    app_token = f"{DEFAULT_FACEBOOK_APP_ID}|app-secret"
    good = (
        await http.get("/oauth/facebook/debug_token", params={"input_token": "EAAB-good", "access_token": app_token})
    ).json()["data"]
    assert (
        good["is_valid"] is True
        and good["user_id"] == "10150000000000001"
        and good["app_id"] == DEFAULT_FACEBOOK_APP_ID
    )
    revoked = (
        await http.get(
            "/oauth/facebook/v19.0/debug_token", params={"input_token": "EAAB-revoked", "access_token": app_token}
        )
    ).json()["data"]
    assert revoked["is_valid"] is False and revoked["error"]["code"] == 190
    unknown = (
        await http.get("/oauth/facebook/debug_token", params={"input_token": "nope", "access_token": app_token})
    ).json()["data"]
    assert unknown["is_valid"] is False
    me = (await http.get("/oauth/facebook/me", params={"fields": "id,email,name", "access_token": "EAAB-good"})).json()
    assert me == {"id": "10150000000000001", "email": "fb@example.com", "name": "Peter Parker"}
    bad = await http.get("/oauth/facebook/me", params={"access_token": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "OAuthException"


# ------------------------------------------------------------------------------------- control API


async def test_control_api(sandbox, http):
    info = (await http.get("/_sandbox")).json()
    assert "NOT the real providers" in info["sandbox"] and info["env"] == sandbox.env()
    fault = sandbox.control.fault("wikipedia", 503, count=None, path="/page/summary/Batman")
    assert (await http.get("/wikipedia/api/rest_v1/page/summary/Batman")).status_code == 503
    assert (await http.get("/wikipedia/api/rest_v1/page/summary/Batman")).status_code == 503
    assert (await http.get("/wikipedia/api/rest_v1/page/summary/Gandalf")).status_code == 200
    assert sandbox.control.faults()[0]["hits"] == 2
    await http.delete(f"/_sandbox/faults/{fault['id']}")
    assert (await http.get("/wikipedia/api/rest_v1/page/summary/Batman")).status_code == 200
    bad = await http.post("/_sandbox/faults", json={"provider": "nobody", "status": 500})
    assert bad.status_code == 400
    assert len(sandbox.control.requests(provider="wikipedia")) == 4
    first_id = sandbox.control.requests()[0]["id"]
    assert len(sandbox.control.requests(since=first_id)) == 3
    sandbox.control.reset()
    assert sandbox.control.requests() == [] and sandbox.control.faults() == []
    unknown = await http.get("/stripe/v1/nothing", headers={"Authorization": "Bearer sk_test_x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["message"].startswith("Unrecognized request URL")


def test_python_m_sandbox_prints_env_and_serves(tmp_path):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[2]),
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("FACEBOOK_GRAPH_URL="):
                break
        text = "".join(lines)
        assert "NOT the real providers" in text
        assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}/anthropic" in text
        assert f"STRIPE_API_BASE=http://127.0.0.1:{port}/stripe" in text
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_sandbox").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("python -m sandbox did not answer")
    finally:
        proc.terminate()
        proc.wait(10)
