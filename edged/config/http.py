"""What every HTTP endpoint of the daemon shares: where it listens, who may ask, how many at
once. Localhost needs nothing; anywhere else needs a token or a login (from the environment),
or ``insecure: true`` said out loud."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, model_validator

from edged.config.base import MAX_DURATION_S, StrictModel


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    token: SecretStr | None = Field(
        None,
        description="required as 'Authorization: Bearer <token>' (or ?token=); write ${ENV_VAR}",
    )
    username: str | None = Field(None, description="HTTP basic auth, with password")
    password: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    insecure: bool = Field(
        False, description="serve a non-loopback host without auth (a warning at start)"
    )
    max_connections: int = Field(64, ge=1, le=4096, description="open at once; more get 503")
    read_timeout_s: float = Field(
        10.0, gt=0, le=MAX_DURATION_S, description="a request's line and headers within this"
    )

    @model_validator(mode="after")
    def _guarded(self) -> HttpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("token is empty (is its environment variable set to nothing?)")
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError("password is empty (is its environment variable set to nothing?)")
        if not is_loopback(self.host) and not self.auth_required and not self.insecure:
            raise ValueError(
                f"host {self.host} can be reached from other machines, and nothing guards it:"
                " set token: ${EDGED_HTTP_TOKEN} (or username and password: ${…}), or"
                " insecure: true to serve it open"
            )
        return self

    @property
    def auth_required(self) -> bool:
        return self.token is not None or self.username is not None

    def access(self) -> tuple[str | None, str | None, str | None, int, float]:
        """What a shared server must agree on."""
        return (
            None if self.token is None else self.token.get_secret_value(),
            self.username,
            None if self.password is None else self.password.get_secret_value(),
            self.max_connections,
            self.read_timeout_s,
        )
