"""Starts and stops real graphsec processes for the compatibility suite.

Each server gets its own temporary data directory and a free port (`--listen 127.0.0.1:0`); the
address is taken from the one line graphsec prints on stdout once it accepts connections. The helper
also knows what the binary can do (TLS, dev tokens), so the suite switches to HTTPS and bearer
tokens by itself once those features land, and skips the scenarios that need them until then.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
LISTENING_LINE = re.compile(r"listening on (https?://\S+)")
STARTUP_TIMEOUT_S = 30

# Fixed tenant ids, so failures are easy to read; any GUIDs would do.
TENANT_A = "11111111-1111-4111-8111-111111111111"
TENANT_B = "22222222-2222-4222-8222-222222222222"
READ_WRITE = "SecurityEvents.ReadWrite.All"
READ_ONLY = "SecurityEvents.Read.All"
# Graph's permission reference and each set's pages: tiIndicators need this one (delegated or
# application) for reads and writes, SecurityEvents.* does not open them (tiindicator-get.md etc.);
# securityActions need the application roles SecurityActions.Read.All / ReadWrite.All
# (securityaction.md: "Currently security actions only support application permissions").
THREAT_INDICATORS = "ThreatIndicators.ReadWrite.OwnedBy"
SECURITY_ACTIONS = "SecurityActions.ReadWrite.All"
# What the suites' default client holds: an application token (a daemon such as a SIEM or TIP
# connector) with the roles every set of the family needs, and a client application id (azp).
EVERY_SET_ROLES = (READ_WRITE, THREAT_INDICATORS, SECURITY_ACTIONS)
COMPAT_APP_ID = "33333333-3333-4333-8333-333333333333"


def _names(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def graphsec_binary() -> str:
    return os.environ.get("GRAPHSEC_BIN", str(REPO_DIR / "target" / "debug" / "graphsec"))


def _help_text(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [graphsec_binary(), *args, "--help"], capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stdout + done.stderr


@dataclass(frozen=True)
class Capabilities:
    """What this graphsec binary supports, probed from its own --help."""

    tls: bool
    tokens: bool
    https_proxy: bool


@lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    _, serve_help = _help_text("serve")
    token_rc, _ = _help_text("token")
    return Capabilities(
        tls="--tls-self-signed" in serve_help,
        tokens=token_rc == 0,
        https_proxy="--https-proxy" in serve_help,
    )


class GraphsecServer:
    """One graphsec process. Use as a context manager, or call start()/stop()."""

    def __init__(self, *extra_args: str, tls: bool | None = None) -> None:
        self.extra_args = list(extra_args)
        self.tls = capabilities().tls if tls is None else tls
        self.data_dir = Path(tempfile.mkdtemp(prefix="graphsec-compat-"))
        self.base_url = ""  # e.g. https://127.0.0.1:41234 (no /beta)
        self._proc: subprocess.Popen[str] | None = None
        self._log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    # --- lifecycle

    def start(self) -> GraphsecServer:
        args = [graphsec_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)]
        if self.tls:
            args.append("--tls-self-signed")
        args += self.extra_args
        log = open(self._log_path, "w")  # stderr: graphsec's log, shown when startup fails
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()

        # readline() blocks; a reader thread lets us give up after a timeout instead of hanging CI.
        found: list[str] = []
        reader = threading.Thread(target=self._read_listening_line, args=(found,), daemon=True)
        reader.start()
        reader.join(STARTUP_TIMEOUT_S)
        if not found:
            self.stop()
            raise RuntimeError(
                f"graphsec did not print its listening line within {STARTUP_TIMEOUT_S}s: "
                f"{' '.join(args)}\n--- its log ---\n{self.log()}"
            )
        self.base_url = found[0].rstrip("/")
        if self.tls and not self.cert_path.is_file():
            raise RuntimeError(f"graphsec runs TLS but wrote no certificate at {self.cert_path}")
        return self

    def _read_listening_line(self, found: list[str]) -> None:
        assert self._proc and self._proc.stdout
        for line in self._proc.stdout:
            match = LISTENING_LINE.search(line)
            if match:
                found.append(match.group(1))
                return

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()  # graphsec drains in-flight requests and exits on SIGTERM
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> GraphsecServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients need

    @property
    def version_root(self) -> str:
        """The SDKs' base URL: graphsec serves Graph's beta paths under /beta."""
        return f"{self.base_url}/beta"

    @property
    def v1_root(self) -> str:
        """The v1.0 SDK's base URL: graphsec serves Graph v1.0's paths of the family under /v1.0."""
        return f"{self.base_url}/v1.0"

    @property
    def cert_path(self) -> Path:
        """The self-signed certificate clients must trust. Its location relative to the data dir
        is set once, in compat/run (GRAPHSEC_COMPAT_TLS_CERT)."""
        rel = os.environ.get("GRAPHSEC_COMPAT_TLS_CERT")
        if not rel:
            raise RuntimeError("GRAPHSEC_COMPAT_TLS_CERT is not set: run the suite through compat/run")
        return self.data_dir / rel

    def token(
        self,
        tenant: str,
        scope: str | Sequence[str] | None = READ_WRITE,
        role: str | Sequence[str] | None = None,
        app_id: str | None = None,
    ) -> str:
        """A dev token from `graphsec token`: delegated with `scope`(s), application with `role`(s)
        (each flag is repeatable), with the client application id `app_id` (azp) if given."""
        args = [graphsec_binary(), "token", "--data-dir", str(self.data_dir), "--tenant", tenant]
        if role:
            args += [a for r in _names(role) for a in ("--role", r)]
        elif scope:
            args += [a for s in _names(scope) for a in ("--scope", s)]
        if app_id:
            args += ["--app-id", app_id]
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def default_token(self) -> str | None:
        """What the scenarios authenticate with by default: tenant A, an application token with
        every set's write role (EVERY_SET_ROLES), once graphsec has tokens; before that graphsec
        has one default tenant and takes no token."""
        if not capabilities().tokens:
            return None
        return self.token(TENANT_A, scope=None, role=EVERY_SET_ROLES, app_id=COMPAT_APP_ID)

    def log(self) -> str:
        try:
            return self._log_path.read_text()
        except OSError:
            return ""
