"""Engines differ in a few named places; everything else is shared.

Each engine is one module here and one registry entry, keyed by the SQLAlchemy dialect name
of its URL. The module holds everything that engine does differently: capabilities, catalog
queries, DDL options, bulk load, the database clock, and its strategies (checksum spelling,
job lock, maintenance). The rest of the code asks the entry — never ``if dialect == ...``.

A leaf: the engines import only their base (``base.py``, ``strategies.py``) and the modules
below them (config, contract, errors, timeutil); what a strategy needs from above is handed
to it (``strategies.LockSite``, ``strategies.MaintenanceSite``).
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ot_core.engines.base import Backend, driver
from ot_core.errors import ConfigError

__all__ = ["ENGINES", "Backend", "backend_class", "backend_for", "driver", "registered"]

# dialect name -> (module, class) of its entry; only the engines a command uses are imported
# (a cycle on the embedded default never imports the server engines). An engine module
# imports only the base, so loading one never imports this registry back.
ENGINES = {"duckdb": ("duckdb", "DuckDBBackend"), "mysql": ("mysql", "MySQLBackend"),
           "postgresql": ("postgres", "PostgresBackend"),
           "redshift": ("redshift", "RedshiftBackend"), "sqlite": ("sqlite", "SQLiteBackend")}
_REGISTRY: dict[str, type[Backend]] = {}


def backend_for(engine_or_dialect: Engine | Connection | sa.engine.Dialect, role: str | None = None) -> Backend:
    dialect = (engine_or_dialect if isinstance(engine_or_dialect, sa.engine.Dialect)
               else engine_or_dialect.dialect)
    return backend_class(dialect.name, role)(dialect)


def backend_class(name: str, role: str | None = None) -> type[Backend]:
    """The entry of the dialect ``name``, checked against ``role`` ('source', 'warehouse')
    before anything connects."""
    cls = _entry(name)
    if cls is None:
        raise ConfigError(
            f"database dialect {name!r} is not supported; supported: "
            f"{', '.join(sorted(registered()))}"
        )
    if role and role not in cls.roles:
        allowed = sorted(n for n, c in registered().items() if role in c.roles)
        raise ConfigError(
            f"a {name} database cannot be the {role}; use one of: {', '.join(allowed)}"
        )
    return cls


def _entry(name: str) -> type[Backend] | None:
    if name not in _REGISTRY and name in ENGINES:
        module, cls = ENGINES[name]
        _REGISTRY[name] = getattr(importlib.import_module(f"ot_core.engines.{module}"), cls)
    return _REGISTRY.get(name)


def registered() -> dict[str, type[Backend]]:
    """Every engine entry, by dialect name."""
    for name in ENGINES:
        _entry(name)
    return dict(_REGISTRY)
