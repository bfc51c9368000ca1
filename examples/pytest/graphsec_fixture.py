"""pytest fixtures that run graphsec for a test suite: copy this file next to your tests.

One in-memory graphsec per test session (`graphsec serve --in-memory --listen 127.0.0.1:0`),
emptied before every test through the admin reset API, stopped when the session ends. Nothing
but the standard library and pytest; the binary is `$GRAPHSEC_BIN`, else `graphsec` on PATH
(`cargo install --path . --locked` in graphsec's clone, or `cargo install --git URL --locked`).

    # conftest.py
    pytest_plugins = ["graphsec_fixture"]

    # test_something.py
    def test_it(graphsec):
        token = graphsec.token("contoso", roles=["SecurityEvents.ReadWrite.All"])
        r = graphsec.request("POST", "/v1.0/security/alerts", token, json={...})
        assert r.status == 201

Point the code under test at `graphsec.base_url` (e.g. `f"{graphsec.base_url}/v1.0"` as the
Graph base URL) and give it a token from `graphsec.token(...)`.
"""

from __future__ import annotations

import json as _json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import pytest

STARTUP_TIMEOUT_S = 30
LISTENING = "graphsec listening on "


@dataclass
class Response:
    status: int
    headers: dict  # names lowercased
    body: Any  # parsed JSON, or None for an empty body

    @property
    def value(self) -> list:
        """The entities of a collection answer."""
        return self.body["value"]


class Graphsec:
    """A running graphsec: its base URL, tokens per tenant and permission, reset, requests."""

    def __init__(self, binary: str, extra_args: Sequence[str] = ()):
        self.binary = binary
        self.admin_token = secrets.token_urlsafe(24)
        self._log = tempfile.NamedTemporaryFile(prefix="graphsec-", suffix=".log", delete=False)
        self._tokens: dict = {}
        try:
            self.proc = subprocess.Popen(
                [binary, "serve", "--in-memory", "--listen", "127.0.0.1:0",
                 # One argument with "=": a random token may start with "-", which would
                 # otherwise read as a flag.
                 f"--admin-token={self.admin_token}", *extra_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, text=True)
        except OSError as e:
            self._log.close()
            os.unlink(self._log.name)
            raise RuntimeError(f"cannot run graphsec ({binary}): {e}") from e
        self.base_url = self._wait_for_listening_line()

    def _wait_for_listening_line(self) -> str:
        found: list = []
        ready = threading.Event()

        def read_stdout() -> None:  # keeps draining stdout afterwards, so the pipe never fills
            for line in self.proc.stdout:
                if not found and line.startswith(LISTENING):
                    found.append(line[len(LISTENING):].strip().rstrip("/"))
                    ready.set()
            ready.set()  # stdout closed: the process exited

        threading.Thread(target=read_stdout, daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT_S) or not found:
            # Read the log before stop() removes it.
            log = self.log()[-3000:]
            code = self.proc.poll()
            self.stop()
            how = f"it exited with status {code}" if code is not None else \
                f"no listening line within {STARTUP_TIMEOUT_S} s"
            raise RuntimeError(f"graphsec did not start ({how}); its log:\n{log}")
        return found[0]

    def log(self) -> str:
        """The server's stderr so far (startup, access log): handy in a failing test's output."""
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def token(self, tenant: str, roles: Sequence[str] = (), scopes: Sequence[str] = ()) -> str:
        """A token of `tenant` with application `roles` or delegated `scopes` (neither: the
        SecurityEvents.ReadWrite.All scope), from `graphsec token --url`. Cached per session:
        the server's signing key lives as long as it does."""
        key = (tenant, tuple(roles), tuple(scopes))
        if key not in self._tokens:
            args = [self.binary, "token", "--url", self.base_url, "--tenant", tenant]
            args += [a for r in roles for a in ("--role", r)]
            args += [a for s in scopes for a in ("--scope", s)]
            self._tokens[key] = subprocess.run(
                args, check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        return self._tokens[key]

    def reset(self, tenant: Optional[str] = None) -> int:
        """Deletes every entity (of one tenant): `POST /_graphsec/reset[?tenant=T]`."""
        path = "/_graphsec/reset" + (f"?tenant={tenant}" if tenant else "")
        r = self.request("POST", path, self.admin_token)
        assert r.status == 200, r
        return r.body["deleted"]

    def request(self, method: str, path: str, token: Optional[str] = None, json: Any = None,
                params: Optional[dict] = None, headers: Optional[dict] = None) -> Response:
        """One HTTP request to `base_url + path` (`params`: query options such as
        `{"$filter": "severity eq 'high'"}`); 4xx/5xx answers are returned, not raised."""
        data = None if json is None else _json.dumps(json).encode()
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        req = urllib.request.Request(url, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return _response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:
            return _response(e.code, e.headers, e.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: graphsec finishes in-flight requests and exits 0
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        os.unlink(self._log.name)



def _response(status: int, headers, raw: bytes) -> Response:
    return Response(status, {k.lower(): v for k, v in headers.items()}, _json.loads(raw) if raw else None)


def graphsec_binary() -> str:
    binary = os.environ.get("GRAPHSEC_BIN") or shutil.which("graphsec")
    if not binary:
        pytest.fail("graphsec not found: set GRAPHSEC_BIN or put graphsec on PATH "
                    "(cargo install --path . --locked)", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def graphsec_server() -> Iterator[Graphsec]:
    """The session's one graphsec (started on first use, stopped at the end of the session)."""
    server = Graphsec(graphsec_binary())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def graphsec(graphsec_server: Graphsec) -> Graphsec:
    """The session's graphsec, emptied (every tenant, every entity set) before this test."""
    graphsec_server.reset()
    return graphsec_server
