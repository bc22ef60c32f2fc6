"""Real HTTP servers imitating Microsoft's side of a Teams bot, scripted by tests.

Three fakes, one per Microsoft service a Teams bot talks to:

`ChannelIdentity` -- the Bot Framework's OpenID metadata and signing keys (JWKS) that a bot uses
to check the JWT on each inbound activity, plus a minter for such channel tokens. Plain HTTP from
a background thread: botbuilder fetches the metadata with blocking `requests` on the event loop.

    with ChannelIdentity() as identity:  # or `async with`
        token = identity.token(app_id=APP_ID, service_url=connector.base_url)

`FakeLogin` -- Azure AD's client-credentials token endpoint, so the real MSAL library can fetch
bot->connector tokens. HTTPS (MSAL refuses anything else) from a background thread, with its own
throw-away CA: point `REQUESTS_CA_BUNDLE` at `login.ca_file`.

    with FakeLogin() as login:
        login.add_app(APP_ID, "secret")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", login.ca_file)
        msal.ConfidentialClientApplication(APP_ID, client_credential="secret",
                                           authority=login.authority("botframework.com"),
                                           validate_authority=False)

`FakeConnector` -- the Bot Connector REST API (v3) under a serviceUrl-like prefix: send, reply,
update and delete activities, roster look-ups, and Teams' streaming protocol, with scripted
failures. aiohttp on the test's event loop.

    async with FakeConnector() as connector:
        connector.script(429, headers={"Retry-After": "1"})
        ...
        message = await connector.wait_for_text("answer")
        assert connector.violations == []

Where the shapes come from (see tests/fixtures/teams/README.md): token headers and claims
from token_claims_examples.json (decoded from real 2019 Teams traffic recorded by botbuilder-js);
the connector's routes, URL-encoding and `201 {"id": ...}` from
bbjs_outbound_reply_to_activity.recording.json; the streaming protocol, its status codes and
error codes from msdocs_outbound_streaming_sequence.normalized.json and the "Response codes"
table of the Teams docs page it was taken from (msteams-platform/bots/streaming-ux.md); the
OpenID metadata from login.botframework.com's published document; the AAD token endpoint's
requests and replies from what msal 1.39 sends and reads (msal/authority.py,
msal/oauth2cli/oauth2.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import itertools
import json
import re
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import RSAAlgorithm

Json = dict[str, Any]

# --- shared: a blocking HTTP(S) server on a background thread ------------------------------------

_SOCKET_TIMEOUT = 5.0  # a stalled client cannot keep a request thread (and close()) waiting longer
_POLL_INTERVAL = 0.05  # how quickly serve_forever() notices shutdown()


@dataclass(frozen=True)
class _Request:
    method: str
    path: str  # percent-decoded, without the query string
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any  # JSON-serialisable
    headers: Mapping[str, str] = field(default_factory=dict)


Dispatch = Callable[[_Request], _Reply]


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to `_Server.serve`; HTTP/1.0, so one request per connection."""

    server: _Server
    timeout = _SOCKET_TIMEOUT

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = _Request(
            method=self.command, path=unquote(url.path), query=parse_qs(url.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.server.serve(request)
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that counts requests per path, optionally speaks TLS, and joins its
    request threads on close (`block_on_close`)."""

    daemon_threads = False

    def __init__(self, dispatch: Dispatch, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.dispatch = dispatch
        self.ssl_context = ssl_context
        self.counts: Counter[str] = Counter()
        self.errors: list[BaseException] = []  # TLS handshake failures, handler crashes
        self._lock = threading.Lock()

    def serve(self, request: _Request) -> _Reply:
        with self._lock:
            self.counts[request.path] += 1
        return self.dispatch(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_SOCKET_TIMEOUT)
        try:  # the handshake runs here, in the request's own thread, not in the accept loop
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except OSError as e:  # ssl.SSLError is an OSError
            self.errors.append(e)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.errors.append(sys.exc_info()[1] or RuntimeError("unknown handler error"))


class _BackgroundServer:
    """Runs a `_Server` on 127.0.0.1 (random port) in a thread; `close()` stops and joins it."""

    def __init__(
        self, name: str, dispatch: Dispatch, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._name = name
        self._dispatch = dispatch
        self._ssl_context = ssl_context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not running: use `with` / `async with` or start()")
        return int(self._server.server_address[1])

    @property
    def errors(self) -> list[BaseException]:
        return self._server.errors if self._server is not None else []

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = _Server(self._dispatch, self._ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": _POLL_INTERVAL},
            name=self._name, daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()  # returns once serve_forever() has left its loop
        self._server.server_close()  # joins request threads still running
        self._thread.join()
        self._thread = None

    def requests_to(self, path: str) -> int:
        return self._server.counts[path] if self._server is not None else 0


class _ThreadedFake:
    """Lifecycle shared by the thread-served fakes: `with`, `async with`, or start()/close()."""

    _server: _BackgroundServer

    def start(self) -> Self:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.close()

    def requests_to(self, path: str) -> int:
        """How many requests reached `path` (percent-decoded, no query) so far."""
        return self._server.requests_to(path)

    @property
    def server_errors(self) -> list[BaseException]:
        """Failed TLS handshakes and handler crashes seen by the server thread."""
        return list(self._server.errors)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)  # shutdown() blocks up to one poll interval


# --- keys and tokens -----------------------------------------------------------------------------


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumbprint(key: rsa.RSAPrivateKey) -> str:
    """An `x5t`-style value: base64url SHA-1 of the public key (real keys hash their cert)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is SHA-1 by definition


def _jwk(kid: str, key: rsa.RSAPrivateKey) -> Json:
    numbers = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "RSA", "use": "sig", "kid": kid, "x5t": _thumbprint(key),
            "n": numbers["n"], "e": numbers["e"]}


def _sign(claims: Json, key: rsa.RSAPrivateKey, headers: Json, alg: str) -> str:
    if alg == "none":  # unsigned: header alg "none", empty signature part; PyJWT wants key None
        return jwt.encode(claims, None, algorithm="none", headers=headers)  # type: ignore[arg-type]
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _merge_claims(claims: Json, extra: Mapping[str, Any] | None) -> Json:
    """`extra` overrides claims; a claim set to None is removed."""
    merged = {**claims, **(extra or {})}
    return {k: v for k, v in merged.items() if v is not None}


# --- ChannelIdentity -----------------------------------------------------------------------------

CHANNEL_ISSUER = "https://api.botframework.com"
TEAMS_KEY = "teams-key"  # endorsements ["msteams"]
BARE_KEY = "bare-key"  # no `endorsements` field at all
EMPTY_KEY = "empty-key"  # endorsements []
WEBCHAT_KEY = "webchat-key"  # endorsements ["webchat"]
UNKNOWN_KEY = "unknown-key"  # never published: tokens signed with it name a kid nobody knows

_ENDORSEMENTS: dict[str, list[str] | None] = {
    TEAMS_KEY: ["msteams"], BARE_KEY: None, EMPTY_KEY: [], WEBCHAT_KEY: ["webchat"],
}


class ChannelIdentity(_ThreadedFake):
    """Imitates login.botframework.com's OpenID metadata + JWKS for channel->bot tokens, and mints
    tokens shaped like the inbound ones in token_claims_examples.json: header alg/kid/typ/x5t;
    claims exactly serviceurl, nbf, exp, iss, aud (real channel tokens carry no appid/ver/iat).

    Published keys: TEAMS_KEY, BARE_KEY, EMPTY_KEY, WEBCHAT_KEY (see their endorsements above);
    UNKNOWN_KEY has a private key but is not published. Point a bot at `metadata_url` (botbuilder:
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL) and `issuer`. RSA keys are generated per instance
    (~25 ms each): share one instance per module or session.
    """

    METADATA_PATH = "/v1/.well-known/openidconfiguration"
    KEYS_PATH = "/v1/.well-known/keys"

    def __init__(self) -> None:
        self._keys = {kid: _rsa_key() for kid in (*_ENDORSEMENTS, UNKNOWN_KEY)}
        self._instance = secrets.token_hex(6)
        self._server = _BackgroundServer("fake-channel-identity", self._dispatch)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def metadata_url(self) -> str:
        """The metadata URL, tagged `?instance=...`: botbuilder caches metadata per URL for the
        whole process (JwtTokenExtractor.metadataCache, a day), and a later fake may get the
        same port; the tag keeps it from verifying against an earlier instance's keys."""
        return f"{self.base_url}{self.METADATA_PATH}?instance={self._instance}"

    @property
    def keys_url(self) -> str:
        return f"{self.base_url}{self.KEYS_PATH}?instance={self._instance}"

    @property
    def issuer(self) -> str:
        return CHANNEL_ISSUER

    def metadata(self) -> Json:
        """The OpenID configuration document, as login.botframework.com publishes it."""
        return {
            "issuer": CHANNEL_ISSUER,
            "authorization_endpoint": "https://invalid.botframework.com",
            "jwks_uri": self.keys_url,
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        }

    def jwks(self) -> Json:
        keys = []
        for kid, endorsements in _ENDORSEMENTS.items():
            key = _jwk(kid, self._keys[kid])
            if endorsements is not None:
                key["endorsements"] = list(endorsements)
            keys.append(key)
        return {"keys": keys}

    def public_key(self, kid: str = TEAMS_KEY) -> rsa.RSAPublicKey:
        return self._keys[kid].public_key()

    def token(
        self,
        *,
        app_id: str,
        service_url: str,
        kid: str | None = TEAMS_KEY,
        issuer: str | None = None,
        audience: str | None = None,
        expires_in: int = 3600,
        not_before_offset: int = 0,
        alg: str = "RS256",
        extra_claims: Mapping[str, Any] | None = None,
        signed_by: str | None = None,
    ) -> str:
        """A channel->bot token. `aud` is `audience` or `app_id`; `nbf` = now + not_before_offset,
        `exp` = now + expires_in (negative: already expired). `kid=None` leaves kid and x5t out of
        the header (signed with TEAMS_KEY). `alg="none"` gives an unsigned token. `signed_by`
        signs with another kid's private key while the header still names `kid` (a forgery).
        `extra_claims` override the claims; a claim set to None is removed."""
        now = int(time.time())
        claims = _merge_claims({
            "serviceurl": service_url,
            "nbf": now + not_before_offset,
            "exp": now + expires_in,
            "iss": issuer or CHANNEL_ISSUER,
            "aud": audience or app_id,
        }, extra_claims)
        header_kid = kid if kid is not None else TEAMS_KEY
        if header_kid not in self._keys:
            raise ValueError(f"unknown kid {kid!r}; known: {sorted(self._keys)}")
        headers = {"kid": kid, "x5t": _thumbprint(self._keys[kid])} if kid is not None else {}
        return _sign(claims, self._keys[signed_by or header_kid], headers, alg)

    def forged_token(self, *, app_id: str, service_url: str, kid: str = TEAMS_KEY) -> str:
        """Names a published key (`kid`, x5t) but is signed with UNKNOWN_KEY: a bad signature."""
        return self.token(app_id=app_id, service_url=service_url, kid=kid, signed_by=UNKNOWN_KEY)

    def _dispatch(self, request: _Request) -> _Reply:
        if request.method == "GET" and request.path == self.METADATA_PATH:
            return _Reply(200, self.metadata())
        if request.method == "GET" and request.path == self.KEYS_PATH:
            return _Reply(200, self.jwks())
        return _Reply(404, {"error": "not_found", "path": request.path})


# --- FakeLogin -----------------------------------------------------------------------------------

BOT_FRAMEWORK_TENANT = "botframework.com"
# The tenant id behind "botframework.com" (iss/tid of the outbound tokens in the fixtures).
BOT_FRAMEWORK_TENANT_ID = "d6d49420-f39b-4df7-a1dc-d59a935871db"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DISCOVERY = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_LOGIN_KEYS = re.compile(r"^/(?P<tenant>[^/]+)/discovery/v2\.0/keys$")


@dataclass(frozen=True)
class TokenRequest:
    """One POST to the token endpoint, as FakeLogin answered it."""

    tenant: str  # the tenant path segment the client used (e.g. "botframework.com" or a GUID)
    client_id: str
    scope: str
    grant_type: str
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class _App:
    secret: str
    tenant: str | None  # None: any tenant (multi-tenant registration)


@dataclass
class _TokenScript:
    status: int
    body: Json | None
    headers: Mapping[str, str]
    remaining: int


class _Tls:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, as PEM files in a temp
    dir. EC P-256 keys (instant to generate); extensions as strict X.509 verification expects."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="fake-login-"))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = self._ca_certificate(ca_key)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = self._server_certificate(server_key, ca_key, ca_cert)
        self.ca_file = self.directory / "ca.pem"
        self.cert_file = self.directory / "server.pem"
        self.key_file = self.directory / "server.key"
        self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Switchboard test CA")])
        return (
            _certificate_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )

    @staticmethod
    def _server_certificate(
        key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        san = x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost"),
        ])
        return (
            _certificate_builder(name, ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )


def _certificate_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _aad_error(error: str, code: int, description: str) -> Json:
    """An Azure AD OAuth error body (RFC 6749 fields plus AAD's AADSTS extras)."""
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} "
                             f"Correlation ID: {correlation_id} Timestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


class FakeLogin(_ThreadedFake):
    """Imitates Azure AD (login.microsoftonline.com) for the client-credentials grant, over HTTPS
    on 127.0.0.1, far enough for msal 1.39's `ConfidentialClientApplication(...,
    validate_authority=False).acquire_token_for_client(...)`:

    - GET  /{tenant}/v2.0/.well-known/openid-configuration  (MSAL's tenant discovery, done when
      the application object is constructed; needs `authorization_endpoint`, `token_endpoint`)
    - POST /{tenant}/oauth2/v2.0/token  (form: grant_type=client_credentials, client_id,
      client_secret, scope, client_info=1; MSAL also sends the id/secret as HTTP Basic auth)
    - GET  /{tenant}/discovery/v2.0/keys  (to verify issued tokens, if a test wants to)

    Access tokens are RS256 JWTs shaped like the outbound bot token in
    token_claims_examples.json (aud = scope without "/.default", iss
    "https://sts.windows.net/<tenant id>/", appid, appidacr, tid, ver "1.0", ...). Trust the
    server with `REQUESTS_CA_BUNDLE=login.ca_file` (the file exists until close()).
    """

    TOKEN_KID_PREFIX = "fake-login"

    def __init__(self, *, expires_in: int = 3599) -> None:
        self.expires_in = expires_in
        self.token_requests: list[TokenRequest] = []
        self._apps: dict[str, _App] = {}
        self._scripts: list[_TokenScript] = []
        self._lock = threading.Lock()
        self._key = _rsa_key()
        self._kid = _thumbprint(self._key)  # AAD's kid and x5t are the same thumbprint
        self._tls = _Tls()
        self._server = _BackgroundServer("fake-login", self._dispatch,
                                         self._tls.server_context())

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self._server.port}"

    @property
    def ca_file(self) -> str:
        """PEM of the CA that signed the server certificate: set REQUESTS_CA_BUNDLE to it."""
        return str(self._tls.ca_file)

    def authority(self, tenant: str = BOT_FRAMEWORK_TENANT) -> str:
        """What to pass as MSAL's `authority` (botbuilder: TO_CHANNEL_FROM_BOT_LOGIN_URL)."""
        return f"{self.base_url}/{tenant}"

    def discovery_path(self, tenant: str = BOT_FRAMEWORK_TENANT) -> str:
        return f"/{tenant}/v2.0/.well-known/openid-configuration"

    def token_path(self, tenant: str = BOT_FRAMEWORK_TENANT) -> str:
        return f"/{tenant}/oauth2/v2.0/token"

    def add_app(self, app_id: str, secret: str, *, tenant: str | None = None) -> None:
        """Registers an app registration. `tenant`: only that tenant (name or id) issues tokens
        to it (a SingleTenant bot); None: any tenant."""
        self._apps[app_id] = _App(secret, self.tenant_id(tenant) if tenant else None)

    def script(
        self, status: int, *, body: Json | None = None,
        headers: Mapping[str, str] | None = None, times: int = 1,
    ) -> None:
        """The next `times` token requests get this reply instead (e.g. 500, or 429 with
        Retry-After). Default body: an AAD error JSON. Recorded in token_requests like others."""
        self._scripts.append(_TokenScript(status, body, dict(headers or {}), times))

    @staticmethod
    def tenant_id(tenant: str) -> str:
        """The GUID AAD reports for a tenant name: botframework.com's real id, a GUID as given,
        any other name a stable made-up GUID."""
        if tenant == BOT_FRAMEWORK_TENANT:
            return BOT_FRAMEWORK_TENANT_ID
        if _GUID.match(tenant):
            return tenant.lower()
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant))

    def decode(self, access_token: str, *, audience: str | None = None) -> Json:
        """The claims of a token this fake issued (signature and expiry checked; `aud` too when
        `audience` is given). Raises jwt.InvalidTokenError for anything else."""
        return jwt.decode(
            access_token, self._key.public_key(), algorithms=["RS256"], audience=audience,
            options={"verify_aud": audience is not None},
        )

    def close(self) -> None:
        super().close()
        self._tls.remove()

    # --- HTTP (runs on server threads) ----------------------------------------------------------

    def _dispatch(self, request: _Request) -> _Reply:
        if request.method == "GET" and (match := _DISCOVERY.match(request.path)):
            return _Reply(200, self._openid_configuration(match["tenant"]))
        if request.method == "GET" and _LOGIN_KEYS.match(request.path):
            return _Reply(200, {"keys": [_jwk(self._kid, self._key)]})
        if request.method == "POST" and (match := _TOKEN.match(request.path)):
            return self._token(match["tenant"], request)
        return _Reply(404, _aad_error("invalid_request", 900561,
                                      f"The endpoint {request.path} does not exist."))

    def _openid_configuration(self, tenant: str) -> Json:
        base, tid = self.base_url, self.tenant_id(tenant)
        return {
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/devicecode",
            "tenant_region_scope": "NA",
        }

    def _token(self, tenant: str, request: _Request) -> _Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        client_id, secret = _client_credentials(form, request.headers.get("authorization", ""))
        scope, grant_type = form.get("scope", ""), form.get("grant_type", "")
        reply = self._scripted() or self._grant(tenant, client_id, secret, scope, grant_type)
        with self._lock:
            self.token_requests.append(TokenRequest(
                tenant, client_id, scope, grant_type, reply.status, time.monotonic()))
        return reply

    def _scripted(self) -> _Reply | None:
        with self._lock:
            if not self._scripts:
                return None
            script = self._scripts[0]
            script.remaining -= 1
            if script.remaining <= 0:
                self._scripts.pop(0)
        body = script.body if script.body is not None else _aad_error(
            "temporarily_unavailable", 50196, f"Scripted failure with HTTP {script.status}.")
        return _Reply(script.status, body, script.headers)

    def _grant(
        self, tenant: str, client_id: str, secret: str, scope: str, grant_type: str
    ) -> _Reply:
        if grant_type != "client_credentials":
            return _Reply(400, _aad_error("unsupported_grant_type", 70003,
                                          "The app requested an unsupported grant type."))
        app = self._apps.get(client_id)
        if app is None or (app.tenant is not None and app.tenant != self.tenant_id(tenant)):
            return _Reply(400, _aad_error(
                "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'."))
        if not secret:
            return _Reply(401, _aad_error(
                "invalid_client", 7000218, "The request body must contain the following "
                "parameter: 'client_assertion' or 'client_secret'."))
        if not secrets.compare_digest(secret, app.secret):
            return _Reply(401, _aad_error(
                "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret "
                f"being sent in the request is the client secret value, not the client secret "
                f"ID, for a secret added to app '{client_id}'."))
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return _Reply(400, _aad_error(
                "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. "
                "Client credential flows must have a scope value with /.default suffixed to "
                "the resource identifier (application ID URI)."))
        return _Reply(200, {
            "token_type": "Bearer", "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self._access_token(tenant, client_id, scope),
        })

    def _access_token(self, tenant: str, client_id: str, scope: str) -> str:
        now, tid = int(time.time()), self.tenant_id(tenant)
        issuer = f"https://sts.windows.net/{tid}/"
        claims = {
            "aud": scope.removesuffix("/.default"), "iss": issuer, "iat": now, "nbf": now,
            "exp": now + self.expires_in, "aio": _b64url(secrets.token_bytes(24)),
            "appid": client_id, "appidacr": "1", "idp": issuer, "tid": tid,
            "uti": _b64url(secrets.token_bytes(16)), "ver": "1.0",
        }
        return _sign(claims, self._key, {"kid": self._kid, "x5t": self._kid}, "RS256")


def _client_credentials(form: Mapping[str, str], authorization: str) -> tuple[str, str]:
    """client_id/client_secret from HTTP Basic auth (url-encoded, RFC 6749 2.3.1) or the form."""
    if authorization.startswith("Basic "):
        decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
        login, _, password = decoded.partition(":")
        return unquote_plus(login), unquote_plus(password)
    return form.get("client_id", ""), form.get("client_secret", "")


# --- FakeConnector -------------------------------------------------------------------------------

SEND, REPLY, UPDATE, DELETE = "send", "reply", "update", "delete"
MEMBER, MEMBERS, PAGED_MEMBERS, UNKNOWN = "member", "members", "pagedmembers", "unknown"
_ACTIVITY_POSTS = (SEND, REPLY)
_SCRIPTABLE_METHODS = ("POST", "PUT")
DEFAULT_TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the tenant in the bbjs fixtures


@dataclass(frozen=True)
class ConnectorCall:
    """One request the connector received. `kind`: send, reply, update, delete, member, members,
    pagedmembers or unknown. Ids are percent-decoded (`path` is as received). `status` is what
    the fake answered; it is None only while a `script(when=...)` predicate looks at the call."""

    kind: str
    method: str
    path: str
    conversation_id: str | None
    activity_id: str | None
    member_id: str | None
    body: Any  # parsed JSON, or None (GET, DELETE, unparsable body)
    bearer: str | None
    at: float  # time.monotonic() on arrival
    status: int | None = None

    @property
    def activity(self) -> Json:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def text(self) -> str:
        return str(self.activity.get("text") or "")


@dataclass(frozen=True)
class Message:
    """A message a user would see (type "message"; a finished stream is one), after updates."""

    id: str
    conversation_id: str
    text: str
    activity: Json
    reply_to_id: str | None = None
    stream_id: str | None = None  # set when this message is the final of a stream


@dataclass(frozen=True)
class StreamChunk:
    sequence: int | None
    stream_type: str  # informative or streaming
    text: str
    at: float  # time.monotonic() on arrival: check the sender's pacing with these


@dataclass
class Stream:
    """One Teams stream: started by a streaminfo activity without streamId, ended by the final."""

    id: str
    conversation_id: str
    chunks: list[StreamChunk] = field(default_factory=list)
    final: Json | None = None
    stopped: bool = False  # the person pressed Stop (`FakeConnector.press_stop`)
    refused_after_stop: int = 0  # updates (final included) refused since

    @property
    def finished(self) -> bool:
        return self.final is not None or self.stopped

    @property
    def last_sequence(self) -> int:
        return max((c.sequence or 0 for c in self.chunks), default=0)

    @property
    def streamed_text(self) -> str:
        """Text of the last `streaming` chunk (informative updates are status lines)."""
        return next((c.text for c in reversed(self.chunks) if c.stream_type == "streaming"), "")


@dataclass
class _ConnectorScript:
    status: int
    body: Any
    headers: Mapping[str, str]
    remaining: int
    when: Callable[[ConnectorCall], bool] | None
    deliver: bool


@dataclass
class Hold:
    """A call the connector keeps waiting (see `FakeConnector.hold`)."""

    when: Callable[[ConnectorCall], bool]
    delivered: bool
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    call: ConnectorCall | None = None  # the call held, once it has arrived


def _error(code: str, message: str) -> Json:
    """The connector's error body (botframework ErrorResponse)."""
    return {"error": {"code": code, "message": message}}


# What Teams answers an update to a stream the person stopped: the "Stop streaming bot
# response" section of msteams-platform/bots/streaming-ux.md, and the body of a real Stop
# quoted in microsoft/teams.ts issue 101.
STOPPED_BY_USER = _error("ContentStreamNotAllowed", "Content stream was cancelled by user.")


_STATUS_CODES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                 405: "MethodNotAllowed", 412: "PreconditionFailed", 413: "RequestEntityTooLarge",
                 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                 503: "ServiceUnavailable", 504: "GatewayTimeout"}


class FakeConnector:
    """Imitates the Bot Connector REST API v3 as Teams serves it at a serviceUrl such as
    https://smba.trafficmanager.net/amer/ (`base_url` keeps such a path prefix):

    - POST {prefix}v3/conversations/{conversationId}/activities               -> 201 {"id"}
    - POST {prefix}v3/conversations/{conversationId}/activities/{activityId}  -> 201 {"id"}
    - PUT  {prefix}v3/conversations/{conversationId}/activities/{activityId}  -> 200 {"id"}
    - DELETE the same                                                         -> 200
    - GET  {prefix}v3/conversations/{conversationId}/members/{memberId}       -> TeamsChannelAccount
    - GET  {prefix}v3/conversations/{conversationId}/members | /pagedmembers

    Conversation ids arrive percent-encoded (`19%3A...%40thread.skype%3Bmessageid%3D...`) and are
    decoded. Streaming (1:1 chats only) follows the Teams docs: an activity with a `streaminfo`
    entity and no streamId starts a stream (201 {"id": streamId}), chunks with the streamId get
    202 {}, the final `message` (streamType "final", no streamSequence) gets `final_status`
    (202 {} as the docs show, or 201 {"id": streamId}). Protocol mistakes are answered as Teams
    does where the docs say how, and always appended to `violations`. `press_stop()` is the
    person pressing Stop: the stream's next update gets Teams' 403. Pacing is not enforced
    (tests must not depend on the clock); each chunk's arrival time is kept in `streams`.

    `streaming_outside_personal`: the status for streaming in a group chat or channel. Reports
    (microsoft/teams-sdk#2316, microsoft/Agents#171) show 405 Method Not Allowed there, not the
    403 ContentStreamNotAllowed of a tenant that disabled streaming (`disable_streaming()`).
    """

    def __init__(
        self,
        *,
        prefix: str = "/amer/",
        tenant_id: str = DEFAULT_TENANT_ID,
        final_status: int = 202,
        streaming_outside_personal: int = 405,
    ) -> None:
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError("prefix must start and end with '/'")
        self.prefix, self.tenant_id = prefix, tenant_id
        self.final_status = final_status
        self.streaming_outside_personal = streaming_outside_personal
        self.calls: list[ConnectorCall] = []
        self.violations: list[str] = []
        self.streams: dict[str, Stream] = {}
        self.members: dict[str, Json] = {}  # by member id
        self.base_url = ""  # http://127.0.0.1:PORT/amer/
        self._messages: dict[str, Message] = {}  # by id, in creation order
        self._scripts: list[_ConnectorScript] = []
        self._validator: Callable[[str | None], bool] | None = None
        self._streaming_disabled = False
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._holds: list[Hold] = []
        self._closing = asyncio.Event()

    # --- setup ----------------------------------------------------------------------------------

    def add_member(
        self,
        *,
        id: str,  # noqa: A002 - the connector's field name
        aad_object_id: str,
        name: str,
        email: str,
        given_name: str | None = None,
        surname: str | None = None,
        user_principal_name: str | None = None,
        user_role: str = "user",
        tenant_id: str | None = None,
    ) -> Json:
        """Adds a roster member (any conversation); returns its TeamsChannelAccount JSON."""
        first, _, last = name.partition(" ")
        self.members[id] = member = {
            "id": id, "name": name, "aadObjectId": aad_object_id, "email": email,
            "userPrincipalName": user_principal_name or email,
            "givenName": given_name if given_name is not None else first,
            "surname": surname if surname is not None else last,
            "tenantId": tenant_id or self.tenant_id, "userRole": user_role,
        }
        return member

    def script(
        self,
        status: int,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        when: Callable[[ConnectorCall], bool] | None = None,
        deliver: bool = False,
    ) -> None:
        """The next `times` POST/PUT calls (that satisfy `when`, if given) get this answer
        instead. Default body: the connector's error JSON for that status (`{}` for 2xx).
        `deliver=True` processes the call as usual but still answers `status` (e.g. a 504 after
        the message went out). Scripted calls are recorded with the status returned."""
        self._scripts.append(_ConnectorScript(status, body, dict(headers or {}), times, when,
                                              deliver))

    def hold(self, when: Callable[[ConnectorCall], bool], *, delivered: bool = False) -> Hold:
        """The next POST or PUT satisfying `when` gets no answer until the returned hold's
        `release` is set; its `arrived` is set when it comes. `delivered=False`: the call is
        acted on only when released, and never if the fake closes first (a request that
        never reached Teams: its sender died waiting); recorded in `calls` once answered.
        `delivered=True`: acted on and recorded on arrival, only the answer waits (Teams
        has the message; a sender that dies meanwhile never learns its id)."""
        hold = Hold(when, delivered)
        self._holds.append(hold)
        return hold

    def press_stop(self, conversation_id: str | None = None) -> list[str]:
        """The person presses Stop on every unfinished stream (in `conversation_id`, if
        given); returns their ids. Teams keeps what the stream showed as a message, and
        answers the next update or final of that stream 403 `STOPPED_BY_USER`; a bot that
        sends another one after that is recorded in `violations`."""
        stopped = []
        for stream in self.streams.values():
            if stream.finished or conversation_id not in (None, stream.conversation_id):
                continue
            stream.stopped = True
            self._store(Message(stream.id, stream.conversation_id, stream.streamed_text,
                                {"type": "message", "text": stream.streamed_text},
                                stream_id=stream.id))
            stopped.append(stream.id)
        return stopped

    def disable_streaming(self) -> None:
        """Every streaminfo activity gets 403 ContentStreamNotAllowed (streaming off for the
        user or bot)."""
        self._streaming_disabled = True

    def require_bearer(self, validator: Callable[[str | None], bool] | None) -> None:
        """Calls whose bearer token fails `validator` (returns false or raises) get 401. None:
        accept anything again (the default: tokens are recorded, not checked)."""
        self._validator = validator

    # --- observing ------------------------------------------------------------------------------

    def calls_to(self, *kinds: str) -> list[ConnectorCall]:
        return [call for call in self.calls if call.kind in kinds]

    def activities(self) -> list[Json]:
        """Bodies of all POSTed activities (send and reply), in order, whatever the answer."""
        return [call.activity for call in self.calls_to(*_ACTIVITY_POSTS)]

    def messages(self, conversation_id: str | None = None) -> list[Message]:
        """Visible messages in the order they were created, with their latest text."""
        return [m for m in self._messages.values()
                if conversation_id is None or m.conversation_id == conversation_id]

    async def wait_for(
        self, predicate: Callable[[ConnectorCall], bool], *, count: int = 1,
        timeout: float = 5.0,
    ) -> list[ConnectorCall]:
        """Waits (woken by each new call, no polling) until `count` calls satisfy `predicate`;
        returns all the calls that do."""
        def matching() -> list[ConnectorCall]:
            return [call for call in self.calls if predicate(call)]

        await self._wait(lambda: len(matching()) >= count, timeout,
                         lambda: f"expected {count} matching call(s), got {len(matching())}")
        return matching()

    async def wait_for_activity(
        self, predicate: Callable[[Json], bool], *, timeout: float = 5.0
    ) -> Json:
        """The first POSTed activity body satisfying `predicate`."""
        [call, *_] = await self.wait_for(
            lambda call: call.kind in _ACTIVITY_POSTS and predicate(call.activity),
            timeout=timeout)
        return call.activity

    async def wait_for_text(self, substring: str, *, timeout: float = 5.0) -> Message:
        """The first visible message whose (latest) text contains `substring`."""
        def first() -> Message | None:
            return next((m for m in self._messages.values() if substring in m.text), None)

        await self._wait(lambda: first() is not None, timeout,
                         lambda: f"no message containing {substring!r}")
        return first()  # type: ignore[return-value]

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        conversation = f"{self.prefix}v3/conversations/{{conversationId}}"
        routes: Iterable[tuple[str, str, str]] = (
            ("POST", "/activities", SEND),
            ("POST", "/activities/{activityId}", REPLY),
            ("PUT", "/activities/{activityId}", UPDATE),
            ("DELETE", "/activities/{activityId}", DELETE),
            ("GET", "/members/{memberId}", MEMBER),
            ("GET", "/members", MEMBERS),
            ("GET", "/pagedmembers", PAGED_MEMBERS),
        )
        for method, tail, kind in routes:
            app.router.add_route(method, conversation + tail, self._route(kind))
        app.router.add_route("*", "/{tail:.*}", self._route(UNKNOWN))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{self.prefix}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # calls still held are answered 503, never acted on
        if self._runner is not None:
            await self._runner.cleanup()

    # --- HTTP -----------------------------------------------------------------------------------

    def _route(self, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._handle(kind, request)

        return handle

    async def _handle(self, kind: str, request: web.Request) -> web.Response:
        body = await _json_body(request)
        call = ConnectorCall(
            kind=kind, method=request.method, path=request.raw_path,
            conversation_id=request.match_info.get("conversationId"),
            activity_id=request.match_info.get("activityId"),
            member_id=request.match_info.get("memberId"),
            body=body, bearer=_bearer(request), at=time.monotonic(),
        )
        hold = self._take_hold(call)
        if hold is not None and hold.delivered:
            reply = await self._act(call)
        if hold is not None:
            hold.call = call
            hold.arrived.set()
            closing = asyncio.ensure_future(self._closing.wait())
            released = asyncio.ensure_future(hold.release.wait())
            await asyncio.wait((closing, released), return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            released.cancel()
            if not hold.release.is_set():
                return web.json_response(_error("ServiceUnavailable", "The fake closed."),
                                         status=503)
        if hold is None or not hold.delivered:
            reply = await self._act(call)
        return web.json_response(reply.body, status=reply.status, headers=dict(reply.headers))

    async def _act(self, call: ConnectorCall) -> _Reply:
        async with self._changed:
            reply = self._answer(call)
            self.calls.append(replace(call, status=reply.status))
            self._changed.notify_all()
        return reply

    def _take_hold(self, call: ConnectorCall) -> Hold | None:
        if call.method not in _SCRIPTABLE_METHODS:
            return None
        for hold in self._holds:
            if hold.when(call):
                self._holds.remove(hold)
                return hold
        return None

    def _answer(self, call: ConnectorCall) -> _Reply:
        if self._validator is not None and not _accepts(self._validator, call.bearer):
            return _Reply(401, {"message": "Authorization has been denied for this request."})
        script = self._take_script(call)
        if script is None:
            return self._serve(call)
        if script.deliver:
            self._serve(call)
        body = script.body
        if body is None:
            body = {} if script.status < 300 else _error(
                _STATUS_CODES.get(script.status, "Error"), f"Scripted HTTP {script.status}.")
        return _Reply(script.status, body, script.headers)

    def _take_script(self, call: ConnectorCall) -> _ConnectorScript | None:
        if call.method not in _SCRIPTABLE_METHODS:
            return None
        for script in self._scripts:
            if script.when is None or script.when(call):
                script.remaining -= 1
                if script.remaining <= 0:
                    self._scripts.remove(script)
                return script
        return None

    def _serve(self, call: ConnectorCall) -> _Reply:
        match call.kind:
            case "send" | "reply":
                return self._post_activity(call)
            case "update":
                return self._update(call)
            case "delete":
                return self._delete(call)
            case "member":
                return self._member(call)
            case "members":
                return _Reply(200, list(self.members.values()))
            case "pagedmembers":
                return _Reply(200, {"members": list(self.members.values())})
        return _Reply(404, _error("NotFound", f"No route for {call.method} {call.path}"))

    # --- activities -----------------------------------------------------------------------------

    def _post_activity(self, call: ConnectorCall) -> _Reply:
        activity = call.activity
        if not activity:
            return _Reply(400, _error("BadSyntax", "The request body must be an activity."))
        info = _stream_info(activity)
        if info is not None:
            return self._stream(call, activity, info)
        activity_id = self._new_id()
        if activity.get("type") == "message":
            self._store(Message(activity_id, str(call.conversation_id), call.text, activity,
                                reply_to_id=call.activity_id))
        return _Reply(201, {"id": activity_id})

    def _update(self, call: ConnectorCall) -> _Reply:
        if not call.activity:
            return _Reply(400, _error("BadSyntax", "The request body must be an activity."))
        message = self._messages.get(str(call.activity_id))
        if message is None:
            return _Reply(404, _error("ActivityNotFoundInConversation",
                                      f"Activity {call.activity_id} was not found."))
        self._store(replace(message, text=call.text, activity=call.activity))
        return _Reply(200, {"id": message.id})

    def _delete(self, call: ConnectorCall) -> _Reply:
        # A stream, finished or not, is one message: deleting it deletes the stream.
        stream = self.streams.pop(str(call.activity_id), None)
        if self._messages.pop(str(call.activity_id), None) is None and stream is None:
            return _Reply(404, _error("ActivityNotFoundInConversation",
                                      f"Activity {call.activity_id} was not found."))
        return _Reply(200, {})

    def _store(self, message: Message) -> None:
        self._messages[message.id] = message

    def _new_id(self) -> str:
        return str(1_700_000_000_000 + next(self._ids))  # like Teams' 1:1 activity ids

    # --- streaming ------------------------------------------------------------------------------

    def _stream(self, call: ConnectorCall, activity: Json, info: Json) -> _Reply:
        if self._streaming_disabled:
            return _Reply(403, _error("ContentStreamNotAllowed", "Content stream is not allowed"))
        if not _is_personal(call, activity):
            status = self.streaming_outside_personal
            return _Reply(status, _error(_STATUS_CODES.get(status, "Error"),
                                         "Streaming is only available in personal chats."))
        stream_type = info.get("streamType") or "streaming"
        stream_id = info.get("streamId")
        if stream_type == "final":
            return self._end_stream(call, activity, info, stream_id)
        if stream_id is None:
            return self._start_stream(call, activity, info, stream_type)
        return self._continue_stream(call, activity, info, stream_type, str(stream_id))

    def _start_stream(
        self, call: ConnectorCall, activity: Json, info: Json, stream_type: str
    ) -> _Reply:
        if not call.text:
            return self._reject(400, "BadRequest", "Start streaming activities should include "
                                "text")
        conversation_id = str(call.conversation_id)
        if any(s.conversation_id == conversation_id and not s.finished
               for s in self.streams.values()):
            self.violations.append(f"second stream started in {conversation_id} while one is "
                                   "still open (one stream per chat)")
        sequence = info.get("streamSequence")
        if sequence != 1:
            self.violations.append(f"first streamSequence must be 1, got {sequence!r}")
        self._check_chunk_type(activity)
        stream = Stream(self._new_id(), conversation_id)
        self.streams[stream.id] = stream
        stream.chunks.append(StreamChunk(_int(sequence), stream_type, call.text, call.at))
        return _Reply(201, {"id": stream.id})

    def _continue_stream(
        self, call: ConnectorCall, activity: Json, info: Json, stream_type: str,
        stream_id: str,
    ) -> _Reply:
        stream = self.streams.get(stream_id)
        if stream is None:
            return self._reject(400, "BadRequest", f"Unknown streamId {stream_id!r}")
        if stream.stopped:
            return self._refuse_stopped(stream)
        if stream.finished:
            return self._reject(403, "ContentStreamNotAllowed", "Content stream is not allowed "
                                "on an already completed streamed message")
        sequence = _int(info.get("streamSequence"))
        expected = stream.last_sequence + 1
        if sequence is None or sequence <= stream.last_sequence:
            self.violations.append(f"stream {stream_id}: streamSequence {sequence!r} after "
                                   f"{stream.last_sequence} (dropped)")
            return _Reply(202, _error("ContentStreamSequenceOrderPreConditionFailed",
                                      "PreCondition failed exception when processing streaming "
                                      "activity."))
        if sequence != expected:
            self.violations.append(f"stream {stream_id}: streamSequence {sequence} skips "
                                   f"{expected}")
        self._check_chunk_type(activity)
        previous = stream.streamed_text
        if stream_type == "streaming" and not call.text.startswith(previous):
            self.violations.append(f"stream {stream_id}: chunk {sequence} text {call.text!r} "
                                   f"does not start with the previous chunk's {previous!r}")
        stream.chunks.append(StreamChunk(sequence, stream_type, call.text, call.at))
        return _Reply(202, {})

    def _end_stream(
        self, call: ConnectorCall, activity: Json, info: Json, stream_id: Any
    ) -> _Reply:
        stream = self.streams.get(str(stream_id)) if stream_id is not None else None
        if stream is None:
            return self._reject(400, "BadRequest", f"Final streaming activity names unknown "
                                f"streamId {stream_id!r}")
        if stream.stopped:
            return self._refuse_stopped(stream)
        if stream.finished:
            return self._reject(403, "ContentStreamNotAllowed", "Content stream is not allowed "
                                "on an already completed streamed message")
        if activity.get("type") != "message":
            self.violations.append(f"stream {stream.id}: final activity must be type message, "
                                   f"got {activity.get('type')!r}")
        if "streamSequence" in info:
            self.violations.append(f"stream {stream.id}: final must not carry streamSequence")
        stream.final = activity
        self._store(Message(stream.id, stream.conversation_id, call.text, activity,
                            reply_to_id=call.activity_id, stream_id=stream.id))
        if self.final_status == 201:
            return _Reply(201, {"id": stream.id})
        return _Reply(self.final_status, {})

    def _refuse_stopped(self, stream: Stream) -> _Reply:
        """The first update after a Stop is how the bot learns of it; more are mistakes."""
        stream.refused_after_stop += 1
        if stream.refused_after_stop > 1:
            self.violations.append(f"stream {stream.id}: update {stream.refused_after_stop} "
                                   "after Teams said the person stopped it")
        return _Reply(403, STOPPED_BY_USER)

    def _check_chunk_type(self, activity: Json) -> None:
        if activity.get("type") != "typing":
            self.violations.append(f"stream chunks must be type typing, got "
                                   f"{activity.get('type')!r}")

    def _reject(self, status: int, code: str, message: str) -> _Reply:
        self.violations.append(f"{status} {code}: {message}")
        return _Reply(status, _error(code, message))

    # --- roster ---------------------------------------------------------------------------------

    def _member(self, call: ConnectorCall) -> _Reply:
        wanted = str(call.member_id)
        member = self.members.get(wanted) or next(
            (m for m in self.members.values() if m["aadObjectId"] == wanted), None)
        if member is None:
            return _Reply(404, _error("MemberNotFoundInConversation",
                                      "The member is not found in the conversation."))
        return _Reply(200, member)

    async def _wait(
        self, ready: Callable[[], bool], timeout: float, describe: Callable[[], str]
    ) -> None:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            seen = [(c.kind, c.status) for c in self.calls]
            raise TimeoutError(f"{describe()}; calls seen (kind, status): {seen}") from None


async def _json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


def _bearer(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    return auth.removeprefix("Bearer ").strip() or None


def _accepts(validator: Callable[[str | None], bool], bearer: str | None) -> bool:
    try:
        return bool(validator(bearer))
    except Exception:  # a validator that raises (e.g. jwt.decode) rejects the token
        return False


def _stream_info(activity: Json) -> Json | None:
    """The `streaminfo` entity; else the older channelData form (streamType/streamId/
    streamSequence in channelData, which the Teams AI library sends alongside the entity)."""
    for entity in activity.get("entities") or []:
        if isinstance(entity, dict) and str(entity.get("type", "")).lower() == "streaminfo":
            return entity
    channel_data = activity.get("channelData")
    if isinstance(channel_data, dict) and "streamType" in channel_data:
        return channel_data
    return None


def _is_personal(call: ConnectorCall, activity: Json) -> bool:
    """conversation.conversationType when the activity says; else Teams' id scheme: group chats
    and channels are `19:...@thread...`, 1:1 chats are `a:...` (or `8:...`)."""
    conversation = activity.get("conversation")
    if isinstance(conversation, dict) and conversation.get("conversationType"):
        return bool(conversation["conversationType"] == "personal")
    return not str(call.conversation_id).startswith("19:")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

