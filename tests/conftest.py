"""Fixtures: real databases only.

``pair`` yields a (source URL, warehouse URL) pair for each backend combination:
``embedded`` (SQLite file → DuckDB file, always) and ``servers`` (MariaDB → PostgreSQL, the
local services). Server tests get throwaway databases created for the test and dropped
after it. Without the servers they skip, saying how to enable them; under CI=true an
unreachable server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

MYSQL_ADMIN = os.environ.get("OT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
PG_ADMIN = os.environ.get("OT_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ENABLE_HINT = ("start MariaDB and PostgreSQL (see .ci/run) or point OT_TEST_MYSQL_URL / "
               "OT_TEST_PG_URL at servers where this user may create databases")

_reachable: dict[str, str | None] = {}


def _check(url: str) -> str | None:
    if url not in _reachable:
        try:
            eng = sa.create_engine(url, pool_pre_ping=True)
            with eng.connect() as c:
                c.exec_driver_sql("SELECT 1")
            eng.dispose()
            _reachable[url] = None
        except Exception as e:  # noqa: BLE001
            _reachable[url] = str(e).splitlines()[0]
    return _reachable[url]


def require_servers() -> None:
    for url in (MYSQL_ADMIN, PG_ADMIN):
        problem = _check(url)
        if problem:
            msg = f"server {sa.engine.make_url(url).render_as_string(hide_password=True)} unreachable ({problem}): {ENABLE_HINT}"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def _throwaway_db(admin_url: str, drop_suffix: str) -> tuple[str, callable]:
    """CREATE DATABASE ot_test_<random> on the server; returns its URL and a dropper."""
    name = f"ot_test_{uuid.uuid4().hex[:10]}"
    eng = _admin(admin_url)
    with eng.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with eng.connect() as c:
            if eng.dialect.name == "mysql":
                _end_sessions_on(c, name)
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{drop_suffix}")
        eng.dispose()

    return url, drop


def _end_sessions_on(c: sa.Connection, name: str) -> None:
    """MariaDB's DROP DATABASE waits (lock_wait_timeout: a year by default) for any session
    still holding a metadata lock there, e.g. one a fault test cut off mid-read whose server
    side has not noticed yet. End those sessions first, as PostgreSQL's WITH (FORCE) does,
    and bound the wait, so a test's teardown can never hold the run."""
    c.exec_driver_sql("SET SESSION lock_wait_timeout = 60")
    ids = c.exec_driver_sql(
        "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
        (name,)).scalars().all()
    if ids:
        warnings.warn(f"{name}: ended {len(ids)} session(s) still open at teardown", stacklevel=2)
    for pid in ids:
        try:
            c.exec_driver_sql(f"KILL {int(pid)}")
        except sa.exc.DBAPIError:  # already gone
            pass


def make_mysql_db() -> tuple[str, callable]:
    return _throwaway_db(MYSQL_ADMIN, "")


def make_pg_db() -> tuple[str, callable]:
    return _throwaway_db(PG_ADMIN, " WITH (FORCE)")


@dataclass
class Pair:
    kind: str
    source_url: str
    warehouse_url: str
    tmp: Path

    def env(self) -> dict[str, str]:
        return {"OT_SOURCE_URL": self.source_url, "OT_WAREHOUSE_URL": self.warehouse_url}

    def process_env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``ot`` child process on this pair: none of the developer's
        OT_* settings, the pair's URLs, data and runs folders in the test's temp folder."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OT_") or k.startswith("OT_TEST_")}
        env.update(self.env(), OT_RUNS_DIR=str(self.tmp / "runs"),
                   OT_DATA_DIR=str(self.tmp / "data"))
        env.update(extra)
        return env


def _pair(kind: str, tmp: Path) -> Iterator[Pair]:
    if kind == "embedded":
        yield Pair(kind, f"sqlite:///{tmp}/source.sqlite", f"duckdb:///{tmp}/warehouse.duckdb", tmp)
        return
    require_servers()
    src, drop_src = make_mysql_db()
    wh, drop_wh = make_pg_db()
    try:
        yield Pair(kind, src, wh, tmp)
    finally:
        _dispose_all()
        drop_src()
        drop_wh()


def _dispose_all() -> None:
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, sa.engine.Engine):
            try:
                obj.dispose()
            except Exception:  # noqa: BLE001
                pass


@pytest.fixture(params=["embedded", "servers"])
def pair(request, tmp_path) -> Iterator[Pair]:
    """A fresh source + warehouse on each backend combination."""
    if request.param == "servers":
        request.applymarker(pytest.mark.servers)
    yield from _pair(request.param, tmp_path)


@pytest.fixture
def embedded(tmp_path) -> Iterator[Pair]:
    yield from _pair("embedded", tmp_path)


@pytest.fixture
def servers(tmp_path) -> Iterator[Pair]:
    yield from _pair("servers", tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_servers()
    url, drop = make_pg_db()
    try:
        yield url
    finally:
        _dispose_all()
        drop()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    require_servers()
    url, drop = make_mysql_db()
    try:
        yield url
    finally:
        _dispose_all()
        drop()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test reads the developer's data/ or runs/ folders or their OT_* settings."""
    for var in list(os.environ):
        if var.startswith("OT_") and not var.startswith("OT_TEST_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OT_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def seeded(embedded) -> Pair:
    """The embedded pair with two days of simulated orders and one cycle run (the test config:
    lifecycle off): a warehouse every command can work on."""
    from support.configs import base_config

    from ot_core.config import parse_config
    from ot_core.pipeline.cycle import run_cycle
    from ot_core.simulate import simulate

    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    run_cycle("2026-03-01T12:00:00Z", config=parse_config(base_config()),
              source=embedded.source_url, warehouse=embedded.warehouse_url)
    return embedded
