"""Load and validate the pipeline config (``--config``, ``OT_CONFIG`` or the shipped default): one model of the pipeline's truth.

A wrong file stops before any work, with one message naming the key, the bad value and what
is allowed. Everything printed about schedules or strategies elsewhere is generated from
this model, so prose can never drift from the running configuration
(docs/legacy-defects.md#10-strategy-comment-contradicting-the-code).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ot_core.contract import CONTRACTS, TableContract
from ot_core.errors import ConfigError, UsageError
from ot_core.resources import default_config_path

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_CONFIG = default_config_path()


def check_identifier(value: str, what: str = "identifier") -> str:
    """Identifiers from config end up in SQL text: allow only plain lower-case names."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use lower-case letters, digits and _, "
            "starting with a letter or _, at most 63 characters"
        )
    return value


Ident = Annotated[str, Field(min_length=1, max_length=63)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schemas(Strict):
    raw: Ident = "settlement_public"
    mart: Ident = "settlement_ods"
    control: Ident = "settlement_ctl"

    @field_validator("raw", "mart", "control")
    @classmethod
    def _ident(cls, v: str) -> str:
        return check_identifier(v, "schema name")


class TimestampCDC(Strict):
    strategy: Literal["timestamp"]
    column: str
    lookback_seconds: int = Field(300, ge=1, le=86400)


class FullRefreshCDC(Strict):
    """Re-read the whole table every cycle; ``column`` (optional) bounds it by as_of."""

    strategy: Literal["full_refresh"]
    column: str | None = None


CDC = Annotated[TimestampCDC | FullRefreshCDC, Field(discriminator="strategy")]


class TableConfig(Strict):
    cdc: CDC
    # Which version of a key wins (docs/contracts.md#marts): the highest version_column,
    # ties broken by the later read; without one, the row read last. A table updated in
    # place needs none: the row read last is the source's current state whatever its
    # timestamp says (an application server's clock behind another's).
    version_column: str | None = None
    updated_in_place: bool = False  # rows change after they are first read (not appended)
    archive_column: str
    raw_trim_hours: int = Field(24, ge=1, le=24 * 90)


class CycleConfig(Strict):
    interval: str = "15m"
    # how far --as-of may run ahead of the source's own clock (clocks drift a little); the
    # watermark still never moves past the source's clock
    clock_skew_seconds: int = Field(120, ge=0, le=366 * 86400)
    chunk_rows: int = Field(50_000, ge=100, le=5_000_000)
    source_retries: int = Field(4, ge=0, le=20)
    retry_backoff_seconds: float = Field(1.0, gt=0, le=60)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        from ot_core.timeutil import parse_duration

        try:
            parse_duration(v)
        except UsageError as e:
            raise ValueError(str(e)) from None
        return v


class LifecycleConfig(Strict):
    enabled: bool = True
    ensure_periods: bool = True
    retention_months: int = Field(6, ge=1, le=120)


class CompareConfig(Strict):
    """``ot compare``: when a run fails, how it bisects, and named legacy relations."""

    max_mismatch_rate: float = Field(0.001, ge=0, le=1)
    first_segments: int = Field(65536, ge=2, le=65536)
    fanout: int = Field(16, ge=2, le=256)
    leaf_rows: int = Field(256, ge=1, le=100_000)
    sample_keys: int = Field(10, ge=0, le=1000)
    # connections per server side for the wide checksum scans (the first level), each
    # reading its own part of the key span: a side's database works on that many cores
    connections_per_side: int = Field(2, ge=1, le=16)
    # differing keys kept per comparison (what `ot repair --from-compare` re-reads)
    keep_keys: int = Field(100_000, ge=0, le=10_000_000)
    # the monthly job repairs a table's differing rows when they are at most this many
    # (and the mismatch rate is within max_mismatch_rate); 0: it only reports them
    repair_max_rows: int = Field(0, ge=0, le=10_000_000)
    # table -> "schema.relation" of a legacy warehouse relation to compare against
    legacy: dict[str, str] = Field(default_factory=dict)

    @field_validator("legacy")
    @classmethod
    def _legacy(cls, legacy: dict[str, str]) -> dict[str, str]:
        for table, rel in legacy.items():
            if table not in CONTRACTS:
                raise ValueError(f"unknown table {table!r}; allowed: {', '.join(sorted(CONTRACTS))}")
            parts = rel.split(".") if isinstance(rel, str) else []
            if len(parts) != 2:
                raise ValueError(f"legacy.{table} = {rel!r}: use schema.relation")
            for part in parts:
                check_identifier(part, f"legacy.{table} name part")
        return legacy


class AlertsConfig(Strict):
    """Where alerts go and when a state is a problem (docs/operations.md). Each setting has an
    environment variable that wins over the file: OT_NOTIFY / OT_NOTIFY_FILE, OT_MAX_LAG,
    OT_EXCEPTION_MAX_AGE."""

    # Apprise URLs (mailtos://, slack://, json://host:port/path, ...); ${NAME} is replaced by
    # the environment variable NAME, so a password never needs to be written in this file
    notify: list[str] = Field(default_factory=list)
    # no successful cycle for longer than this is a breach (default: 4 cycle intervals)
    max_lag: str | None = None
    # an exception left open longer than this is alerted
    exception_max_age: str = "7d"
    # an unchanged failing state is repeated at most this often, in one digest
    digest_every: str = "1d"
    # seconds one destination may take to accept a message (a down one must not hold a job)
    send_timeout_seconds: int = Field(10, ge=1, le=120)

    @field_validator("max_lag", "exception_max_age", "digest_every")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        from ot_core.timeutil import parse_duration

        if v is None:
            return v
        try:
            parse_duration(v)
        except UsageError as e:
            raise ValueError(str(e)) from None
        return v

# a prefix is required: a landing deletes every object under it that is not its own
S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*()-][A-Za-z0-9!_.*()/-]*$")
IAM_ROLE = re.compile(r"^(default|arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512})$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
# the environment overrides the config file (a deployment names its bucket, the file stays shared)
REDSHIFT_ENV = {"s3_uri": "OT_REDSHIFT_S3_URI", "iam_role": "OT_REDSHIFT_IAM_ROLE",
                "region": "OT_REDSHIFT_S3_REGION"}


class RedshiftConfig(Strict):
    """How batches reach an Amazon Redshift warehouse (read only when the warehouse is one):
    Parquet staged under ``s3_uri``, then one COPY per table per batch authorized by
    ``iam_role`` (docs/redshift.md). No credentials here: uploads use the standard AWS chain."""

    s3_uri: str | None = None
    iam_role: str | None = None
    region: str | None = None
    # a batch smaller than this lands by multi-row INSERT (a COPY has a fixed cost of its own)
    copy_min_rows: int = Field(5000, ge=1, le=100_000_000)

    @field_validator("s3_uri")
    @classmethod
    def _s3_uri(cls, v: str | None) -> str | None:
        if v is not None and not S3_URI.match(v):
            raise ValueError("use s3://bucket/prefix/ (a bucket name of lower-case letters, "
                             "digits, '.' and '-'; a prefix of letters, digits and /!_.*()-, "
                             "used only for staging: a landing deletes what other landings "
                             "left under it)")
        return v if v is None else v.rstrip("/") + "/"

    @field_validator("iam_role")
    @classmethod
    def _iam_role(cls, v: str | None) -> str | None:
        if v is not None and not IAM_ROLE.match(v):
            raise ValueError("use arn:aws:iam::<12-digit account>:role/<name>, or default "
                             "(the cluster's default IAM role)")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not REGION.match(v):
            raise ValueError("use an AWS region name such as eu-west-1")
        return v

    def resolved(self, environ: dict[str, str] | None = None) -> RedshiftConfig:
        """These settings with the environment's ``OT_REDSHIFT_*`` applied, validated the
        same way (the message names the variable)."""
        env = os.environ if environ is None else environ
        given = {k: env[var] for k, var in REDSHIFT_ENV.items() if env.get(var)}
        if not given:
            return self
        try:
            return RedshiftConfig.model_validate({**self.model_dump(), **given})
        except ValidationError as e:
            first = e.errors()[0]
            var = REDSHIFT_ENV.get(str(first["loc"][0]), str(first["loc"][0]))
            raise ConfigError(f"{var} = {first.get('input')!r}: "
                              f"{first['msg'].removeprefix('Value error, ')}") from None


class PipelineConfig(Strict):
    schemas: Schemas = Schemas()
    cycle: CycleConfig = CycleConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    compare: CompareConfig = CompareConfig()
    alerts: AlertsConfig = AlertsConfig()
    redshift: RedshiftConfig = RedshiftConfig()
    tables: dict[str, TableConfig]

    @field_validator("tables")
    @classmethod
    def _tables(cls, tables: dict[str, TableConfig]) -> dict[str, TableConfig]:
        unknown = sorted(set(tables) - set(CONTRACTS))
        if unknown:
            raise ValueError(
                f"unknown table {unknown[0]!r}; allowed: {', '.join(sorted(CONTRACTS))}"
            )
        missing = sorted(set(CONTRACTS) - set(tables))
        if missing:
            raise ValueError(f"table {missing[0]!r} is missing; all of {', '.join(sorted(CONTRACTS))} are required")
        for name, t in tables.items():
            allowed = CONTRACTS[name].column_names
            named = {"archive_column": t.archive_column, "version_column": t.version_column}
            named["cdc.column"] = t.cdc.column
            if isinstance(t.cdc, TimestampCDC):
                if t.cdc.lookback_seconds >= t.raw_trim_hours * 3600:
                    raise ValueError(
                        f"{name}.cdc.lookback_seconds={t.cdc.lookback_seconds} must be shorter "
                        f"than raw_trim_hours ({t.raw_trim_hours}h)"
                    )
            for key, col in named.items():
                if col is not None and col not in allowed:
                    raise ValueError(
                        f"{name}.{key} = {col!r} is not a column of {name}; allowed: {', '.join(allowed)}"
                    )
        return dict(sorted(tables.items()))

    @model_validator(mode="after")
    def _distinct_schemas(self) -> PipelineConfig:
        s = self.schemas
        if len({s.raw, s.mart, s.control}) < 3 and s.mart == s.raw:
            raise ValueError("schemas.raw and schemas.mart must differ")
        return self

    # -- conveniences -----------------------------------------------------------------
    @property
    def retention_months(self) -> int:
        return self.lifecycle.retention_months

    def table(self, name: str) -> TableConfig:
        return self.tables[name]

    def landed(self, name: str) -> TableContract:
        """The contract of ``name`` as the warehouse holds it: its CDC column may be NULL (a
        source whose CDC column allows NULL has those rows read, not skipped:
        docs/cycle.md#null-cdc-values)."""
        column = self.tables[name].cdc.column
        return CONTRACTS[name].with_nullable(column) if column else CONTRACTS[name]


def _format(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
    # discriminated unions add the tag to the path; drop it for readability
    loc = re.sub(r"\.(timestamp|full_refresh)(?=\.|$)", "", loc)
    value = first.get("input")
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "union_tag_invalid":
        loc, value = f"{loc}.strategy", first["ctx"]["tag"]
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    if isinstance(value, dict):
        return f"{source}: {loc or '(top level)'}: {msg}{more}"
    return f"{source}: {loc} = {value!r}: {msg}{more}"


def config_path(path: str | os.PathLike | None = None) -> Path:
    """``--config`` wins, then ``OT_CONFIG``, then the default shipped with the package."""
    chosen = path or os.environ.get("OT_CONFIG") or DEFAULT_CONFIG
    return Path(chosen)


def resolve_config(config: PipelineConfig | str | os.PathLike | None) -> PipelineConfig:
    """A config already loaded, or loaded from ``config`` (a path, or the default)."""
    return config if isinstance(config, PipelineConfig) else load_config(config)


def load_config(path: str | os.PathLike | None = None) -> PipelineConfig:
    p = config_path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"config file {str(p)!r} cannot be read ({e.strerror}); "
                          "pass --config PATH or set OT_CONFIG") from None
    try:
        data = safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_config(data, str(p))


def safe_load(text: str) -> Any:
    """YAML's safe subset, parsed by libyaml where PyYAML was built with it (ten times
    faster than the pure-Python parser; every command reads the config)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def parse_config(data: dict, source: str = "config") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'tables' key")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from None
