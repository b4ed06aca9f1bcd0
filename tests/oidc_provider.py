"""A real OpenID Connect provider for the single sign-on tests: Dex (built from the Go module proxy by
scripts/dex, cached outside the repo), on 127.0.0.1, with its memory storage and its static password
connector, whose users carry the groups the tests give them. Registered as a pytest plugin by tests/conftest.py."""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "driftwatch"
CLIENT_SECRET = "driftwatch-test-client-secret"
# Dex stores bcrypt hashes only; this one (cost 10) is of PASSWORD, as in Dex's own example configuration.
PASSWORD = "password"
PASSWORD_HASH = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"
# Qualified by connector: "local" is Dex's password database, where the static users below live.
GROUP_ROLES = {
    "local": {
        "platform-leads": {"role": "operator", "scopes": ["local/demo"]},
        "developers": {"role": "viewer"},
    }
}


@dataclass
class DexUser:
    email: str
    groups: list[str]
    # Dex's subject is derived from this and the connector: the same user across restarts of the provider.
    user_id: str = ""
    # Dex vouches for a static user's e-mail unless told otherwise (its `emailVerified`, since v2.45).
    email_verified: bool = True

    def entry(self) -> dict:
        return {
            "email": self.email,
            "hash": PASSWORD_HASH,
            "username": self.email.partition("@")[0],
            "userID": self.user_id or f"id-{self.email}",
            "groups": self.groups,
            "emailVerified": self.email_verified,
        }


@dataclass
class Dex:
    """One Dex process; `restart` gives its users new groups (the memory storage starts empty each time)."""

    binary: Path
    workdir: Path
    redirect_uris: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen | None = None
    # Dex's settings beyond its password database: e.g. {"expiry": {"idTokens": "2s"}}, or "connectors" (its
    # mock connector "mockCallback" logs in Kilgore Trout, group "authors", without a form).
    options: dict = field(default_factory=dict)
    # Dex's storage: memory (empty at each start), or a PostgreSQL database (see `keep_storage_in`), which keeps
    # its refresh tokens and signing keys across restarts, so a restart can change a user's groups under them.
    storage: dict = field(default_factory=lambda: {"type": "memory"})

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/dex"

    def start(self, users: list[DexUser]) -> None:
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        config = {
            "issuer": self.issuer,
            "storage": self.storage,
            "web": {"http": f"127.0.0.1:{self.port}"},
            "oauth2": {"skipApprovalScreen": True},
            "logger": {"level": "info"},
            "staticClients": [
                {"id": CLIENT_ID, "secret": CLIENT_SECRET, "name": "Driftwatch", "redirectURIs": self.redirect_uris}
            ],
            "enablePasswordDB": True,
            "staticPasswords": [user.entry() for user in users],
        } | self.options
        config_path = self.workdir / "dex.yaml"
        config_path.write_text(yaml.safe_dump(config))
        log = (self.workdir / "dex.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.binary), "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dex did not start:\n{(self.workdir / 'dex.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self, users: list[DexUser]) -> None:
        self.stop()
        self.start(users)

    def settings(self) -> dict[str, object]:
        """Driftwatch's settings for this provider, as the DRIFTWATCH_OIDC_* variables would set them."""
        discovery = requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()
        return {
            "DRIFTWATCH_OIDC_ISSUER": discovery["issuer"],
            "SSO_ENABLED": True,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": discovery["authorization_endpoint"],
            "OIDC_OP_TOKEN_ENDPOINT": discovery["token_endpoint"],
            "OIDC_OP_JWKS_ENDPOINT": discovery["jwks_uri"],
            "DRIFTWATCH_OIDC_GROUP_ROLES": json.dumps(GROUP_ROLES),
        }

    def keep_storage_in(self, database: dict[str, object]) -> None:
        """Store Dex's state in this PostgreSQL database (a Django DATABASES entry's NAME, USER, ...)."""
        self.storage = {
            "type": "postgres",
            "config": {
                "host": str(database["HOST"]),
                "port": int(str(database["PORT"])),
                "database": str(database["NAME"]),
                "user": str(database["USER"]),
                "password": str(database["PASSWORD"]),
                "ssl": {"mode": "disable"},
            },
        }

    def log_in(
        self,
        authorization_url: str,
        email: str,
        callback_prefix: str,
        password: str = PASSWORD,
        connector: str = "",
    ) -> str:
        """What a browser does at the provider: open its login page (the `connector`'s, when Dex has several), send
        the password form if it shows one, follow the provider's own redirects. Returns the URL the provider sends
        the browser back to (the callback, with code and state); that URL itself is never fetched here."""
        browser = requests.Session()
        url = authorization_url + (f"&connector_id={connector}" if connector else "")
        answer = browser.get(url, allow_redirects=False, timeout=10)
        for _ in range(12):
            location = answer.headers.get("Location", "")
            if answer.status_code in (302, 303) and location.startswith(callback_prefix):
                return location
            if answer.status_code in (302, 303):
                answer = browser.get(urljoin(answer.url, location), allow_redirects=False, timeout=10)
                continue
            assert answer.status_code == 200, f"provider answered {answer.status_code}: {answer.text[:500]}"
            action = re.search(r'<form method="post" action="([^"]+)"', answer.text)
            assert action, f"no login form on the provider's page {answer.url}"
            answer = browser.post(
                urljoin(answer.url, html.unescape(action.group(1))),
                data={"login": email, "password": password},
                allow_redirects=False,
                timeout=10,
            )
        raise AssertionError("the provider never sent the browser back")


@pytest.fixture(scope="session")
def dex_binary() -> Path:
    """Dex, built once per machine (scripts/dex build; cached under ~/.cache/driftwatch/dex-VERSION)."""
    result = subprocess.run([str(ROOT / "scripts" / "dex"), "path"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/dex path failed:\n{result.stderr[-4000:]}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def dex(dex_binary: Path, tmp_path: Path) -> Iterator[Dex]:
    provider = Dex(binary=dex_binary, workdir=tmp_path)
    yield provider
    provider.stop()
