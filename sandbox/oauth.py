"""Sign-in material: Google and Apple ID tokens (RS256, JWKS) and Facebook Graph token checks.

* ``GET /oauth/google/jwks``, ``GET /oauth/apple/jwks``: real JWKS documents
  (``{"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid", "n", "e"}]}``), two keys each as
  Google publishes; tokens are signed with the first. ``GET /oauth/google/.well-known/openid-configuration``
  too.
* :func:`mint_id_token` signs a token the way Google / Apple do (``iss`` ``https://accounts.google.com`` /
  ``https://appleid.apple.com``, ``aud`` your client id, ``sub``, ``email``, ``email_verified``,
  ``iat``, ``exp``, ``kid`` in the header). Apple sends ``email_verified`` (and ``is_private_email``)
  as the *strings* ``"true"``/``"false"``, as its docs allow and as many real tokens do - a verifier
  must accept both forms.
* Keys belong to the process (all sandboxes started in it share them). Another process can mint
  through ``POST /_sandbox/oauth/id_token``; set ``SANDBOX_OAUTH_KEYS_FILE`` to share keys through a
  file instead. ``POST /_sandbox/oauth/rotate`` rotates keys (old tokens then fail: for key-rotation
  tests).
* Facebook: ``GET /oauth/facebook[/vNN.N]/debug_token?input_token=&access_token=`` and
  ``GET /oauth/facebook[/vNN.N]/me?fields=id,email,name&access_token=``, for user tokens registered
  with :func:`register_facebook_token` or ``POST /_sandbox/oauth/facebook/tokens``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from .core import JSON, SandboxState, register_error_renderer

ISSUERS = {"google": "https://accounts.google.com", "apple": "https://appleid.apple.com"}
DEFAULT_FACEBOOK_APP_ID = "1234567890123456"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, str]:
        pub = self.private.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": _int_b64(pub.n), "e": _int_b64(pub.e)}

    def pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


@dataclass
class FacebookToken:
    token: str
    user_id: str
    email: str | None = None
    name: str | None = None
    app_id: str = DEFAULT_FACEBOOK_APP_ID
    valid: bool = True
    expires_at: int = 0
    scopes: list[str] = field(default_factory=lambda: ["email", "public_profile"])


class KeyRing:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, list[SigningKey]] = {}
        self.facebook: dict[str, FacebookToken] = {}
        path = os.environ.get("SANDBOX_OAUTH_KEYS_FILE")
        if path and os.path.exists(path):
            self._load(path)
        else:
            for provider in ("google", "apple"):
                self.keys[provider] = [self._new_key(provider), self._new_key(provider)]
            if path:
                self._save(path)

    @staticmethod
    def _new_key(provider: str) -> SigningKey:
        return SigningKey(
            f"sandbox-{provider}-{secrets.token_hex(8)}", rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )

    def _save(self, path: str) -> None:
        data = {p: [{"kid": k.kid, "pem": k.pem()} for k in ks] for p, ks in self.keys.items()}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)

    def _load(self, path: str) -> None:
        with open(path) as f:
            data = json.load(f)
        for p, ks in data.items():
            self.keys[p] = [
                SigningKey(k["kid"], serialization.load_pem_private_key(k["pem"].encode(), None)) for k in ks
            ]

    def rotate(self, provider: str) -> None:
        with self.lock:
            self.keys[provider] = [self._new_key(provider), self._new_key(provider)]
            path = os.environ.get("SANDBOX_OAUTH_KEYS_FILE")
            if path:
                self._save(path)

    def jwks(self, provider: str) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys[provider]]}


_KEYRING: KeyRing | None = None
_KEYRING_LOCK = threading.Lock()


def keyring() -> KeyRing:
    global _KEYRING
    with _KEYRING_LOCK:
        if _KEYRING is None:
            _KEYRING = KeyRing()
        return _KEYRING


def jwks(provider: str) -> dict[str, Any]:
    """The JWKS document the sandbox serves for ``provider`` ("google" or "apple")."""
    return keyring().jwks(provider)


def _sign_rs256(claims: dict[str, Any], key: SigningKey) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(sig)


def mint_id_token(
    provider: str,
    sub: str,
    email: str | None,
    audience: str,
    email_verified: bool = True,
    expires_in: int = 3600,
    issuer: str | None = None,
    *,
    nonce: str | None = None,
    name: str | None = None,
    extra_claims: dict[str, Any] | None = None,
    issued_at: int | None = None,
    kid: str | None = None,
) -> str:
    """An RS256 ID token as ``provider`` ("google" or "apple") would issue it, signed with the key
    its sandbox JWKS publishes. ``expires_in`` may be negative (an expired token); ``issuer``
    overrides ``iss`` (a wrong issuer); ``extra_claims`` add or override claims."""
    if provider not in ISSUERS:
        raise ValueError("provider must be 'google' or 'apple'")
    ring = keyring()
    keys = ring.keys[provider]
    key = next((k for k in keys if k.kid == kid), keys[0]) if kid else keys[0]
    iat = int(time.time()) if issued_at is None else issued_at
    claims: dict[str, Any] = {
        "iss": issuer or ISSUERS[provider],
        "aud": audience,
        "sub": sub,
        "iat": iat,
        "exp": iat + expires_in,
    }
    if provider == "google":
        claims.update(azp=audience, email=email, email_verified=bool(email_verified))
        if name:
            claims.update(name=name, given_name=name.split()[0], family_name=" ".join(name.split()[1:]) or None)
        claims["at_hash"] = _b64url(secrets.token_bytes(16))
    else:
        claims.update(
            email=email,
            email_verified="true" if email_verified else "false",
            is_private_email="true" if (email or "").endswith("@privaterelay.appleid.com") else "false",
            auth_time=iat,
            nonce_supported=True,
            real_user_status=2,
        )
        claims["c_hash"] = _b64url(secrets.token_bytes(16))
    if email is None:
        claims.pop("email", None)
        claims.pop("email_verified", None)
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(extra_claims or {})
    return _sign_rs256({k: v for k, v in claims.items() if v is not None}, key)


def register_facebook_token(
    token: str,
    user_id: str,
    email: str | None = None,
    name: str | None = None,
    app_id: str = DEFAULT_FACEBOOK_APP_ID,
    valid: bool = True,
    expires_in: int = 3600,
) -> FacebookToken:
    """Make ``token`` a Facebook user access token the sandbox Graph API knows (process-wide)."""
    fb = FacebookToken(token, str(user_id), email, name, app_id, valid, int(time.time()) + expires_in)
    keyring().facebook[token] = fb
    return fb


# -------------------------------------------------------------------------------------- routes


@register_error_renderer("google", "apple")
def render_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return JSON(
        {"error": error_type or "server_error", "error_description": message or f"Error {status}"}, status_code=status
    )


@register_error_renderer("facebook")
def render_fb_error(status: int, message: str | None = None, error_type: str | None = None, **_: Any) -> Response:
    return JSON(
        {
            "error": {
                "message": message or "An unexpected error has occurred. Please retry your request later.",
                "type": error_type or ("OAuthException" if status < 500 else "FacebookApiException"),
                "code": 190 if status in (400, 401) else 2,
                "fbtrace_id": "A" + secrets.token_hex(10),
            }
        },
        status_code=status,
    )


def build_google(state: SandboxState) -> Router:
    async def certs(request: Request) -> Response:
        return JSON(jwks("google"), headers={"cache-control": "public, max-age=21600"})

    async def discovery(request: Request) -> Response:
        base = str(request.url).split("/.well-known")[0]
        return JSON(
            {
                "issuer": ISSUERS["google"],
                "jwks_uri": base + "/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token"],
                "subject_types_supported": ["public"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub"],
            }
        )

    return Router(
        routes=[
            Route("/jwks", certs, methods=["GET"]),
            Route("/oauth2/v3/certs", certs, methods=["GET"]),
            Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        ]
    )


def build_apple(state: SandboxState) -> Router:
    async def keys(request: Request) -> Response:
        return JSON(jwks("apple"))

    return Router(routes=[Route("/jwks", keys, methods=["GET"]), Route("/auth/keys", keys, methods=["GET"])])


def build_facebook(state: SandboxState) -> Router:
    def graph_error(message: str, code: int = 190, status: int = 400, type: str = "OAuthException") -> Response:
        return JSON(
            {"error": {"message": message, "type": type, "code": code, "fbtrace_id": "A" + secrets.token_hex(10)}},
            status_code=status,
        )

    async def debug_token(request: Request) -> Response:
        q = request.query_params
        if not q.get("access_token"):
            return graph_error("An access token is required to request this resource.", 104)
        if not q.get("input_token"):
            return graph_error("(#100) The parameter input_token is required", 100)
        fb = keyring().facebook.get(q["input_token"])
        if fb is None:
            return JSON(
                {
                    "data": {
                        "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
                        "is_valid": False,
                        "scopes": [],
                    }
                }
            )
        expired = fb.expires_at < time.time()
        data: dict[str, Any] = {
            "app_id": fb.app_id,
            "type": "USER",
            "application": "SceneXtras (sandbox)",
            "data_access_expires_at": fb.expires_at + 90 * 86400,
            "expires_at": fb.expires_at,
            "is_valid": fb.valid and not expired,
            "issued_at": fb.expires_at - 3600,
            "scopes": fb.scopes,
            "user_id": fb.user_id,
        }
        if expired:
            data["error"] = {
                "code": 190,
                "message": "Error validating access token: Session has expired",
                "subcode": 463,
            }
        elif not fb.valid:
            data["error"] = {
                "code": 190,
                "message": "Error validating access token: The session has been "
                "invalidated because the user changed their password or Facebook has changed the session "
                "for security reasons.",
                "subcode": 460,
            }
        return JSON({"data": data})

    async def me(request: Request) -> Response:
        token = request.query_params.get("access_token")
        auth = request.headers.get("authorization", "")
        if not token and auth.lower().startswith(("bearer ", "oauth ")):
            token = auth.split(" ", 1)[1].strip()
        if not token:
            return graph_error("An active access token must be used to query information about the current user.", 2500)
        fb = keyring().facebook.get(token)
        if fb is None:
            return graph_error("Invalid OAuth access token - Cannot parse access token")
        if fb.expires_at < time.time():
            return graph_error("Error validating access token: Session has expired.")
        if not fb.valid:
            return graph_error("Error validating access token: The session has been invalidated.")
        fields = (request.query_params.get("fields") or "id,name").split(",")
        profile = {"id": fb.user_id, "email": fb.email, "name": fb.name}
        out = {f.strip(): profile[f.strip()] for f in fields if f.strip() in profile and profile[f.strip()] is not None}
        out.setdefault("id", fb.user_id)
        return JSON(out)

    return Router(
        routes=[
            Route("/debug_token", debug_token, methods=["GET"]),
            Route("/me", me, methods=["GET"]),
            Route("/{version:str}/debug_token", debug_token, methods=["GET"]),
            Route("/{version:str}/me", me, methods=["GET"]),
        ]
    )


def control_routes(state: SandboxState) -> list[Route]:
    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        return json.loads(raw) if raw else {}

    async def mint(request: Request) -> Response:
        spec = await body(request)
        try:
            token = mint_id_token(**spec)
        except (TypeError, ValueError) as e:
            return JSON({"error": str(e)}, status_code=400)
        return JSON({"id_token": token})

    async def fb_tokens(request: Request) -> Response:
        spec = await body(request)
        try:
            fb = register_facebook_token(**spec)
        except TypeError as e:
            return JSON({"error": str(e)}, status_code=400)
        return JSON(vars(fb), status_code=201)

    async def rotate(request: Request) -> Response:
        spec = await body(request)
        for provider in spec.get("providers") or ["google", "apple"]:
            keyring().rotate(provider)
        return JSON({p: [k.kid for k in ks] for p, ks in keyring().keys.items()})

    return [
        Route("/_sandbox/oauth/id_token", mint, methods=["POST"]),
        Route("/_sandbox/oauth/facebook/tokens", fb_tokens, methods=["POST"]),
        Route("/_sandbox/oauth/rotate", rotate, methods=["POST"]),
    ]


__all__ = ["mint_id_token", "register_facebook_token", "jwks", "keyring"]
