"""Agent settings that are not (yet) fields of opendots.config.ClientConfig, read from the optional [agent] table of
the same client.toml:

    [agent]
    state_file = "opendots-client-state.db"   # mid/sid counters and active mitigations (default: next to the socket)
    reconnect_min = 60.0                      # seconds; RFC 9132 §4.7: MUST NOT retry more often than every 60 s
    reconnect_max = 300.0                     # SHOULD NOT retry more often than every 300 s
    attempt_delay = 0.25                      # Happy Eyeballs Connection Attempt Delay (RFC 8305)
    connect_timeout = 10.0                    # per connection attempt
    request_timeout = 30.0                    # waiting for a CON/TLS answer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendots.config import ClientConfig, ConfigError


@dataclass
class AgentSettings:
    state_file: Path
    reconnect_min: float = 60.0
    reconnect_max: float = 300.0
    attempt_delay: float = 0.25
    connect_timeout: float = 10.0
    request_timeout: float = 30.0
    telemetry_setups: dict[str, dict[str, Any]] = field(default_factory=dict)
    """RFC 9244 setups by kind, from client.toml's [telemetry]: installed at start, re-sent after a reconnection."""

    @classmethod
    def defaults_for(cls, config: ClientConfig) -> AgentSettings:
        socket = Path(config.control_socket)
        return cls(state_file=socket.with_name(socket.stem + "-state.db"))

    @classmethod
    def from_config(cls, config: ClientConfig) -> AgentSettings:
        """From the [agent] table ClientConfig.load read (unknown keys were refused there): one read of the file."""
        settings = cls.defaults_for(config)
        table = config.agent
        where = f"{config.path}: [agent]" if config.path is not None else "[agent]"
        base = config.path.resolve().parent if config.path is not None else Path.cwd()
        if "state_file" in table:
            settings.state_file = base / str(table["state_file"])
        for name in ("reconnect_min", "reconnect_max", "attempt_delay", "connect_timeout", "request_timeout"):
            if name in table:
                value = table[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{where} {name} must be a number")
                setattr(settings, name, float(value))
        if config.telemetry:
            from opendots.signal.client.core.telemetry import setups_from_table

            settings.telemetry_setups = setups_from_table(config.telemetry)  # checked by ClientConfig.load already
        if not 0 < settings.reconnect_min <= settings.reconnect_max:
            raise ConfigError(f"{where} needs 0 < reconnect_min <= reconnect_max")
        return settings
