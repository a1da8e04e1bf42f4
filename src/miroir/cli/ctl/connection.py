"""Where `miroir ctl` connects and with which keys, and the one HTTP client it talks through.

Theory of operation. A connection is a URL, the admin key (for `/_miroir/*`) and optionally an
API key (the master key or a key with `tasks.*` actions, for the Meilisearch routes `tasks`
uses; the admin key is tried when there is none). Each comes from the first of: the command's
flag (`--url`, `--admin-key`, `--api-key`), the environment (`MIROIR_URL`, `MIROIR_ADMIN_KEY`,
`MIROIR_API_KEY`), the selected context of the credentials file. The file
(`~/.config/miroir/credentials`, or `$MIROIR_CREDENTIALS`) is YAML, like kubectl's config:

    current-context: prod
    contexts:
      prod: {url: "https://miroir.internal:7700", admin-key: "...", api-key: "..."}
      local: {url: "http://127.0.0.1:7700", admin-key: "dev"}

`--context` / `$MIROIR_CONTEXT` picks one; else `current-context`; else the only one. The file
holds secrets, so it must be readable by its owner only (mode 0600 or stricter): anything else
is refused before it is read, as ssh does with keys.

Keys are never printed: not in errors, not in `--json` output, not in a repr (`Connection`
hides them). `AdminClient` turns every way of not reaching Miroir into `CannotReach` (exit
3) and every error answer into `ApiError` (exit 1), carrying Miroir's `{message, code}`.

Must never: echo a key, or read a credentials file others can read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import yaml

CREDENTIALS_ENV = "MIROIR_CREDENTIALS"
DEFAULT_CREDENTIALS = Path("~/.config/miroir/credentials")
TIMEOUT_S = 60.0


class UsageError(Exception):
    """The command cannot be run as given (exit 2)."""


class CannotReach(Exception):
    """Miroir did not answer (exit 3)."""


class ApiError(Exception):
    """Miroir answered with an error (exit 1)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(str(body.get("message") or f"HTTP {status}"))
        self.status = status
        self.code = str(body.get("code") or "")
        self.body = dict(body)
        self.hint: str | None = None


@attrs.frozen
class Connection:
    url: str
    admin_key: str | None = attrs.field(default=None, repr=False)
    api_key: str | None = attrs.field(default=None, repr=False)
    context: str | None = None


def credentials_path() -> Path:
    return Path(os.environ.get(CREDENTIALS_ENV) or DEFAULT_CREDENTIALS).expanduser()


def read_credentials(path: Path) -> dict[str, Any]:
    """The credentials file's contents; {} when there is none. Refuses a file group or others
    may read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise UsageError(f"cannot read {path}: {type(error).__name__}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path} holds keys but is mode {stat.S_IMODE(mode):04o}; make it "
                         f"readable by its owner only: chmod 600 {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"cannot read {path}: {type(error).__name__}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("contexts", {}), dict):
        raise UsageError(f"{path}: expected `contexts:` mapping names to {{url, admin-key}}")
    return loaded


def choose_context(credentials: Mapping[str, Any], wanted: str | None) -> tuple[str | None,
                                                                               dict[str, Any]]:
    contexts = credentials.get("contexts") or {}
    name = wanted or credentials.get("current-context")
    if name is None and len(contexts) == 1:
        name = next(iter(contexts))
    if name is None:
        return None, {}
    if name not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise UsageError(f"no context `{name}` in {credentials_path()} (known: {known})")
    context = contexts[name]
    if not isinstance(context, dict):
        raise UsageError(f"context `{name}` in {credentials_path()} is not a mapping")
    return name, context


def resolve(*, url: str | None, admin_key: str | None, api_key: str | None,
            context: str | None, environ: Mapping[str, str] = os.environ) -> Connection:
    """Flags, then the environment, then the credentials file (module docstring)."""
    name, chosen = choose_context(read_credentials(credentials_path()),
                                  context or environ.get("MIROIR_CONTEXT"))
    found_url = url or environ.get("MIROIR_URL") or chosen.get("url")
    if not found_url:
        raise UsageError("no Miroir URL: pass --url, set MIROIR_URL, or add a context to "
                         f"{credentials_path()}")
    return Connection(
        url=str(found_url).rstrip("/"),
        admin_key=admin_key or environ.get("MIROIR_ADMIN_KEY") or chosen.get("admin-key"),
        api_key=api_key or environ.get("MIROIR_API_KEY") or chosen.get("api-key"),
        context=name,
    )


class AdminClient:
    """The admin API (and the few Meilisearch routes ctl uses) over httpx."""

    def __init__(self, connection: Connection, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.connection = connection
        self._http = httpx.Client(base_url=connection.url, timeout=TIMEOUT_S,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def _headers(self, api: bool) -> dict[str, str]:
        key = (self.connection.api_key or self.connection.admin_key) if api \
            else self.connection.admin_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, api: bool = False,
                timeout_s: float | None = None) -> Any:
        """The answer's JSON; `api` sends the API key (Meilisearch routes) instead;
        `timeout_s` replaces the client's timeout for a request known to take long."""
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            response = self._http.request(method, path, json=json, params=params,
                                          headers=self._headers(api), **extra)
        except httpx.TransportError as error:
            raise CannotReach(f"cannot reach Miroir at {self.connection.url}: "
                              f"{type(error).__name__}: {error}") from None
        try:
            body = response.json() if response.content else {}
        except ValueError:
            raise CannotReach(f"{self.connection.url} answered {response.status_code} with "
                              "something that is not JSON: is it Miroir?") from None
        if response.status_code >= 400:
            error = ApiError(response.status_code, body if isinstance(body, dict) else {})
            if error.code == "miroir_invalid_auth" and not self.connection.admin_key:
                error.hint = ("no admin key was sent: pass --admin-key, set MIROIR_ADMIN_KEY, "
                              "or add `admin-key` to the context")
            raise error
        return body

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)
