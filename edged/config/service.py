"""How the daemon reports to its service manager (systemd)."""

from __future__ import annotations

from pydantic import Field

from edged.config.base import PositiveSeconds, StrictModel


class ServiceConfig(StrictModel):
    ready_timeout_s: PositiveSeconds = Field(
        30.0,
        description="report ready after this long even if a camera has not processed a "
        "frame yet (it is named in the service status)",
    )
