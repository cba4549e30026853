"""Typed configuration of the stream: defaults, then a TOML file, then IMGSIEVE_* variables, then flags.

Sections [producer], [consumer], [db] and [model] hold the keys below; the environment variable for a
key is IMGSIEVE_<SECTION>_<KEY> (e.g. IMGSIEVE_CONSUMER_BATCH_SIZE, IMGSIEVE_DB_PASSWORD), lists are
comma-separated there. Every error names the bad key, where its value came from and what was expected.
"""

from __future__ import annotations

import argparse
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from imgsieve.errors import UserError

ENV_PREFIX = "IMGSIEVE_"
DEFAULT_INCLUDE = ("*.jpg", "*.jpeg", "*.png", "*.gif", "*.bmp")
MB = 1_000_000

Overrides = dict[str, dict[str, Any]]


class _Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _both_or_neither(section: _Section, first: str, second: str) -> None:
    """Fail unless the two keys are both set or both unset (a CURVE key pair and its peer's keys)."""
    if (getattr(section, first) is None) != (getattr(section, second) is None):
        given, missing = (first, second) if getattr(section, first) is not None else (second, first)
        raise ValueError(
            f"{given} is set but {missing} is not: CURVE needs both (or neither, for an unencrypted link)"
        )


class ProducerConfig(_Section):
    """How the producer lists, fetches and hands out images, and when it gives up on a consumer."""

    bind: str = Field(default="tcp://*:5557", description="ZeroMQ endpoint the producer binds for consumers")
    include: list[str] = Field(
        default=list(DEFAULT_INCLUDE),
        description="glob on the file name, case-insensitive; repeat the flag for several",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="deliveries of one image before it becomes an error row"
    )
    item_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds an image may go without an ACK or a progress report before it is re-sent",
    )
    heartbeat_interval: float = Field(default=1.0, gt=0, description="seconds between heartbeats, both ways")
    peer_timeout: float = Field(
        default=5.0,
        gt=0,
        description="seconds of silence after which a consumer (or the producer) counts as gone",
    )
    prefetch: int = Field(
        default=64, ge=1, description="images listed and fetched ahead of the consumers' demand"
    )
    fetch_concurrency: int = Field(default=8, ge=1, description="concurrent S3 GETs or file reads")
    max_bytes: int = Field(
        default=20 * MB, ge=1, description="larger images are not fetched: they become error rows"
    )
    curve_secret_key: Path | None = Field(
        default=None,
        description="the producer's CURVE key pair file (NAME.key_secret from `imgsieve keys`); with "
        "curve_authorized_keys, the link is encrypted and only authorized consumers get work",
    )
    curve_authorized_keys: Path | None = Field(
        default=None, description="folder of the consumers' CURVE public key files (*.key) allowed in"
    )

    @model_validator(mode="after")
    def _curve_pair(self) -> ProducerConfig:
        _both_or_neither(self, "curve_secret_key", "curve_authorized_keys")
        return self


class ConsumerConfig(_Section):
    """How a consumer vets, batches and classifies images."""

    producer: str = Field(default="tcp://127.0.0.1:5557", description="ZeroMQ endpoint of the producer")
    batch_size: int = Field(default=32, ge=1, description="images per request to the model server")
    concurrency: int = Field(default=2, ge=1, description="batches in flight to the model server at once")
    credit: int = Field(
        default=0, ge=0, description="most images held at once; 0 means batch_size * (concurrency + 1)"
    )
    batch_wait: float = Field(
        default=0.05,
        ge=0,
        description="longest wait, seconds, for a batch to fill before it is sent part-full",
    )
    max_bytes: int = Field(default=20 * MB, ge=1, description="larger images become error rows")
    max_pixels: int = Field(default=40 * MB, ge=1, description="images with more pixels become error rows")
    shrink_side: int = Field(
        default=224,
        ge=0,
        description="model input side: images whose shorter side is over 4x this are decoded at reduced "
        "size and re-encoded at 2x it before sending; 0 sends every image as it is",
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="seconds to finish held images after SIGTERM before returning them"
    )
    host: str = Field(default=socket.gethostname(), description="name recorded in each row's consumer_host")
    curve_secret_key: Path | None = Field(
        default=None,
        description="this consumer's CURVE key pair file (NAME.key_secret from `imgsieve keys`); with "
        "curve_producer_key, the link is encrypted",
    )
    curve_producer_key: Path | None = Field(
        default=None, description="the producer's CURVE public key file (its NAME.key)"
    )

    @model_validator(mode="after")
    def _curve_pair(self) -> ConsumerConfig:
        _both_or_neither(self, "curve_secret_key", "curve_producer_key")
        return self

    def window(self) -> int:
        """Return how many images this consumer may hold at once (its total credit)."""
        return self.credit or self.batch_size * (self.concurrency + 1)


class DbConfig(_Section):
    """Where result rows go."""

    url: str = Field(
        default="mysql://imgsieve@127.0.0.1:3306/imgsieve", description="MySQL URL without password"
    )
    password: SecretStr | None = Field(default=None, description="MySQL password (never a flag)")
    ssl_ca: Path | None = Field(
        default=None,
        description="CA certificate (PEM) that signed the server's: TLS that checks the server's certificate "
        "and name; without it TLS is used if the server offers it, unverified",
    )


class ModelConfig(_Section):
    """The model server the consumers call."""

    url: str = Field(
        default="http://127.0.0.1:8501/v1/models/imgsieve", description="TF Serving REST URL of the model"
    )


class Config(_Section):
    """The whole stream configuration."""

    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    consumer: ConsumerConfig = Field(default_factory=ConsumerConfig)
    db: DbConfig = Field(default_factory=DbConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Config.model_fields.items()
}


def field_help(section: str, key: str) -> str:
    """Return the help text for a flag that sets section.key: its description and default."""
    info = SECTIONS[section].model_fields[key]
    default = info.get_default(call_default_factory=True)
    shown = ", ".join(default) if isinstance(default, list) else default
    return f"{info.description} (default: {shown}; config [{section}] {key})"


def add_flag(parser: argparse.ArgumentParser, flag: str, section: str, key: str, **kwargs: Any) -> None:
    """Register a flag that sets section.key; only flags actually given override the config."""
    parser.add_argument(
        flag, dest=f"{section}.{key}", default=argparse.SUPPRESS, help=field_help(section, key), **kwargs
    )


def flag_overrides(args: argparse.Namespace) -> Overrides:
    """Collect the values of the add_flag flags that were given on the command line."""
    found: Overrides = {}
    for dest, value in vars(args).items():
        section, dot, key = dest.partition(".")
        if dot and section in SECTIONS:
            found.setdefault(section, {})[key] = value
    return found


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
) -> Config:
    """Build the config from defaults, the TOML file at path, env (IMGSIEVE_*) and overrides (flags)."""
    values: Overrides = {name: {} for name in SECTIONS}
    origins: dict[tuple[str, str], str] = {}
    if path is not None:
        _merge(values, origins, _read_toml(path), str(path))
    _merge(values, origins, _from_env(env or {}), "environment")
    _merge(values, origins, overrides or {}, "command line")
    try:
        return Config.model_validate(values)
    except ValidationError as exc:
        raise UserError(_describe(exc, origins)) from None


def _read_toml(path: Path) -> Overrides:
    """Parse the TOML file at path into {section: {key: value}}."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}; check the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    for name, section in data.items():
        if name not in SECTIONS:
            raise UserError(
                f"config file {path}: unknown section [{name}]; expected one of {', '.join(SECTIONS)}"
            )
        if not isinstance(section, dict):
            raise UserError(f"config file {path}: {name} must be a [{name}] table of keys")
    return data


def _from_env(env: Mapping[str, str]) -> Overrides:
    """Pick IMGSIEVE_<SECTION>_<KEY> variables out of env; lists are comma-separated."""
    found: Overrides = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        section = next((s for s in SECTIONS if rest.startswith(f"{s}_")), None)
        if section is None:
            continue  # IMGSIEVE_* variables of other tools are not ours to judge
        key = rest[len(section) + 1 :]
        fields = SECTIONS[section].model_fields
        if key not in fields:
            raise UserError(
                f"environment variable {var}: [{section}] has no key {key!r}; "
                f"expected one of {', '.join(fields)}"
            )
        value: Any = raw
        if fields[key].annotation == list[str]:
            value = [part.strip() for part in raw.split(",") if part.strip()]
        found.setdefault(section, {})[key] = value
    return found


def _merge(values: Overrides, origins: dict[tuple[str, str], str], layer: Overrides, origin: str) -> None:
    """Lay layer over values, remembering where each key came from."""
    for section, keys in layer.items():
        for key, value in keys.items():
            values.setdefault(section, {})[key] = value
            origins[(section, key)] = (
                f"{ENV_PREFIX}{section.upper()}_{key.upper()}" if origin == "environment" else origin
            )


def _describe(exc: ValidationError, origins: dict[tuple[str, str], str]) -> str:
    """Turn a pydantic error into lines naming each bad key, its origin and what was expected."""
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        section, key = (*loc, "", "")[:2]
        name = f"[{section}] {key}" if key else f"[{section}]"
        origin = origins.get((section, key), "config")
        if not key:  # a check across the section's keys: its message names them
            lines.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
        elif error["type"] == "extra_forbidden":
            expected = ", ".join(SECTIONS[section].model_fields) if section in SECTIONS else ""
            lines.append(f"{name} (from {origin}): unknown key; expected one of {expected}")
        else:
            shown = "***" if key == "password" else repr(error.get("input"))
            lines.append(f"{name} = {shown} (from {origin}): {error['msg'].lower()}")
    return "invalid configuration: " + "; ".join(lines)
