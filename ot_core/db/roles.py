"""The three roles a server warehouse needs, as SQL an administrator runs (``ot roles --sql``).

- the pipeline: logs in as itself, owns its schemas and everything it creates in them
  (DDL + DML: loads, merges, rotation, the control tables, the resolve procedure);
- the analyst: reads the marts, their history tables, the exceptions log and the control
  tables the workbench's views show, and may change one thing: resolve an exception,
  through the pipeline's procedure (``Backend.resolver_statements``);
- the auditor: reads the run records (job runs, batches, checks, comparisons, maintenance,
  the exceptions log) and no order data.

Names come from the config (schemas, checked as identifiers there) and the options (role
names, checked here); every name is quoted by the engine's dialect. What differs between
PostgreSQL and Redshift (users versus roles, CONNECT, ``GRANT ROLE``) is the engine entry's
(``Backend.role_*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from ot_core.config import PipelineConfig, check_identifier, resolve_config
from ot_core.db.connect import parse_url, url_from_env
from ot_core.db.schema import (
    BATCHES_TABLE,
    CHECK_RESULTS_TABLE,
    COMPARE_KEYS_TABLE,
    COMPARE_RESULTS_TABLE,
    EXCEPTIONS_TABLE,
    JOB_RUNS_TABLE,
    MAINTENANCE_LOG_TABLE,
    VERSION_TABLE,
    WATERMARKS_TABLE,
)
from ot_core.engines import Backend, backend_class, registered
from ot_core.errors import ExtraMissing, UsageError

KINDS = ("pipeline", "analyst", "auditor")
DEFAULT_NAMES = {"pipeline": "ot_pipeline", "analyst": "ot_analyst", "auditor": "ot_auditor"}
# the control tables the workbench's views read (ot_core/workbench/explore.py)
ANALYST_CONTROL = (WATERMARKS_TABLE, JOB_RUNS_TABLE, CHECK_RESULTS_TABLE, COMPARE_RESULTS_TABLE)
# the run records
AUDITOR_CONTROL = (JOB_RUNS_TABLE, BATCHES_TABLE, CHECK_RESULTS_TABLE, COMPARE_RESULTS_TABLE,
                   COMPARE_KEYS_TABLE, MAINTENANCE_LOG_TABLE, VERSION_TABLE)


@dataclass
class RoleScript:
    """The statements of each role, in the order to run them, with a comment each."""

    backend: str
    blocks: dict[str, list[str]] = field(default_factory=dict)

    def sql(self) -> str:
        parts = [f"-- ot-workbench roles for {self.backend} (docs/roles.md). Run as an "
                 "administrator; the analyst and auditor grants name tables the pipeline "
                 "creates, so run them after its first cycle."]
        for lines in self.blocks.values():
            parts.append("")
            parts.extend(lines)
        return "\n".join(parts) + "\n"


def server_backend(name: str | None, url: sa.engine.URL | None) -> Backend:
    """The engine entry the SQL is written for: ``name``, else the warehouse URL's engine,
    which must have roles. Built on the dialect alone: nothing connects."""
    if name is None:
        if url is None:
            raise UsageError("name the engine: --backend postgresql or --backend redshift")
        name = url.get_backend_name()
    cls = backend_class(name, "warehouse")
    if not cls.has_roles:
        with_roles = sorted(n for n, c in registered().items() if c.has_roles)
        raise UsageError(
            f"a {name} warehouse has no roles (the workbench opens it read-only; the file's "
            f"permissions decide who writes): pass --backend {' or --backend '.join(with_roles)} "
            "to print the roles of a server warehouse")
    try:
        dialect = sa.engine.make_url(f"{name}://").get_dialect()()
    except (ImportError, sa.exc.NoSuchModuleError) as e:
        raise ExtraMissing(f"writing {name} SQL needs its dialect: pip install "
                           f"'ot-workbench[{cls.extra}]' ({e})") from None
    return cls(dialect)


def role_script(config: PipelineConfig | str | None = None, *, backend: str | None = None,
                url: sa.engine.URL | str | None = None, database: str | None = None,
                names: dict[str, str] | None = None,
                only: tuple[str, ...] = KINDS) -> RoleScript:
    """The CREATE ROLE / GRANT statements of the roles in ``only`` for the configured
    schemas, on ``backend`` (default: the engine of ``url``, itself by default
    ``OT_WAREHOUSE_URL``); ``database`` (default: the URL's) is the one the roles connect
    to. Nothing connects."""
    cfg = resolve_config(config)
    url = parse_url(url, "the warehouse URL") if isinstance(url, str) else url
    url = url if url is not None else url_from_env("warehouse")
    be = server_backend(backend, url)
    names = {**DEFAULT_NAMES, **(names or {})}
    for kind, name in names.items():
        try:
            check_identifier(name, f"the {kind} role name")
        except ValueError as e:
            raise UsageError(str(e)) from None
    for kind in only:
        if kind not in KINDS:
            raise UsageError(f"no role {kind!r}; the roles are {', '.join(KINDS)}")
    if database is None and url is not None and url.get_backend_name() == be.name:
        database = url.database
    w = _Writer(be, cfg, {k: be.quote(v) for k, v in names.items()},
                be.quote(database) if database else None)
    script = RoleScript(be.name)
    for kind in KINDS:
        if kind in only:
            script.blocks[kind] = getattr(w, kind)()
    return script


class _Writer:
    def __init__(self, be: Backend, cfg: PipelineConfig, names: dict[str, str],
                 database: str | None):
        self.be, self.cfg, self.names, self.database = be, cfg, names, database
        s = cfg.schemas
        self.raw, self.mart, self.ctl = be.quote(s.raw), be.quote(s.mart), be.quote(s.control)

    def grantee(self, kind: str) -> str:
        if kind == "pipeline":  # a login (a user on Redshift), not a group role
            return self.names[kind]
        return self.be.role_grantee.format(name=self.names[kind])

    def on_database(self, kind: str, privileges: str | None) -> list[str]:
        if privileges is None:
            return []
        if self.database is None:
            return [f"-- (no database named: grant {privileges} on it to {self.grantee(kind)})"]
        return [f"GRANT {privileges} ON DATABASE {self.database} TO {self.grantee(kind)};"]

    def tables(self, schema: str, names: tuple[str, ...]) -> str:
        return ", ".join(self.be.qualified(schema, n) for n in names)

    def pipeline(self) -> list[str]:
        be, name, to = self.be, self.names["pipeline"], self.grantee("pipeline")
        out = ["-- the pipeline: loads, merges, rotates; owns its schemas and what it creates "
               "(tables, history tables, the resolve procedure)",
               be.role_login_sql.format(name=name) + ";",
               f"-- {be.role_login_note.format(name=name)}"]
        out += self.on_database("pipeline", be.role_database_writer)
        out += [extra.format(name=name) for extra in be.role_pipeline_extra]
        for schema in dict.fromkeys((self.raw, self.mart, self.ctl)):
            out += [f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {name};",
                    f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {to};",
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} "
                    f"TO {to};"]
        return out

    def analyst(self) -> list[str]:
        be, to = self.be, self.grantee("analyst")
        creator = be.role_creator.format(name=self.names["pipeline"])
        out = ["-- the analyst (the workbench, OT_ANALYST_URL): reads marts, history and the "
               "control tables the views show; resolves exceptions only through the procedure",
               be.role_group_sql.format(name=self.names["analyst"]) + ";"]
        out += self.on_database("analyst", be.role_database_reader)
        out += [f"GRANT USAGE ON SCHEMA {s} TO {to};" for s in dict.fromkeys((self.mart, self.ctl))]
        out += [f"GRANT SELECT ON ALL TABLES IN SCHEMA {self.mart} TO {to};",
                "-- history tables the pipeline creates later are readable too",
                f"ALTER DEFAULT PRIVILEGES {creator} IN SCHEMA {self.mart} GRANT SELECT ON TABLES "
                f"TO {to};",
                f"GRANT SELECT ON {self.tables(self.cfg.schemas.control, ANALYST_CONTROL)} "
                f"TO {to};",
                f"GRANT EXECUTE ON PROCEDURE {be.resolver(self.cfg.schemas.mart)} TO {to};",
                "-- each analyst logs in as themself: "
                + be.role_member_sql.format(role=self.names["analyst"], user="alice") + ";"]
        return out

    def auditor(self) -> list[str]:
        be, to = self.be, self.grantee("auditor")
        out = ["-- the auditor: reads the run records and the exceptions log; no order data",
               be.role_group_sql.format(name=self.names["auditor"]) + ";"]
        out += self.on_database("auditor", be.role_database_reader)
        out += [f"GRANT USAGE ON SCHEMA {s} TO {to};" for s in dict.fromkeys((self.mart, self.ctl))]
        out += [f"GRANT SELECT ON {self.tables(self.cfg.schemas.control, AUDITOR_CONTROL)}, "
                f"{be.qualified(self.cfg.schemas.mart, EXCEPTIONS_TABLE)} TO {to};",
                "-- each auditor logs in as themself: "
                + be.role_member_sql.format(role=self.names["auditor"], user="bob") + ";"]
        return out
