"""The analyst role on a real PostgreSQL, made from what `ot roles --sql` prints: every
explore view works with it, nothing writes from a workbench connection (nor from the role
with READ ONLY lifted), and resolving an exception goes through the pipeline's procedure,
recording the database user. Also: the v3 → v4 upgrade, the analyst URL's fallback and
secrets, and the Redshift spelling of the roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import PG_ADMIN, _dispose_all
from support.db import run_sql, scalar
from test_explore import MART, _setup

from ot_core.cli import main
from ot_core.config import load_config
from ot_core.db import schema
from ot_core.db.connect import ANALYST_FALLBACK, analyst_url, open_database
from ot_core.db.roles import role_script
from ot_core.engines.redshift import RedshiftBackend
from ot_core.errors import PermissionMissing, UsageError
from ot_core.pipeline.cycle import run_cycle
from ot_core.pipeline.exception_log import resolve_exception, resolve_in
from ot_core.secrets import redact
from ot_core.workbench import access, explore

CONTROL = load_config().schemas.control


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(False)


def _admin_script(url: str, sql: str) -> None:
    """Run what `ot roles --sql` printed, as the administrator (one multi-statement
    execute, as psql -f would)."""
    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            c.connection.driver_connection.cursor().execute(sql)
    finally:
        eng.dispose()


def _roles_cli(url: str, *args: str) -> str:
    res = CliRunner().invoke(main, ["roles", "--sql", *args], env={"OT_WAREHOUSE_URL": url})
    assert res.exit_code == 0, res.output
    return res.output


@contextmanager
def deployment(pg_url: str, tmp_path) -> Iterator[SimpleNamespace]:
    """A warehouse set up the documented way: the pipeline's login and schemas from
    `ot roles --sql --role pipeline`, a cycle (and the seeded history table and exceptions)
    run as the pipeline, then the reader roles from `--role analyst --role auditor`, and a
    person of each. Roles are cluster-wide: unique names, dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {"pipeline": f"ot_pipe_{tag}", "analyst": f"ot_analyst_{tag}",
             "auditor": f"ot_auditor_{tag}", "alice": f"alice_{tag}", "bob": f"bob_{tag}"}
    flags = ["--pipeline-role", names["pipeline"], "--analyst-role", names["analyst"],
             "--auditor-role", names["auditor"]]
    try:
        _admin_script(pg_url, _roles_cli(pg_url, "--role", "pipeline", *flags))
        pipeline_url = _as(pg_url, names["pipeline"])
        oid = _setup(SimpleNamespace(source_url=f"sqlite:///{tmp_path}/source.sqlite",
                                     warehouse_url=pipeline_url))
        readers = _roles_cli(pg_url, "--role", "analyst", "--role", "auditor", *flags)
        _admin_script(pg_url, readers)
        _admin_script(pg_url, f"CREATE ROLE {names['alice']} LOGIN IN ROLE {names['analyst']};"
                              f"CREATE ROLE {names['bob']} LOGIN IN ROLE {names['auditor']};")
        yield SimpleNamespace(names=names, oid=oid, pipeline=pipeline_url, readers=readers,
                              analyst=_as(pg_url, names["alice"]),
                              auditor=_as(pg_url, names["bob"]))
    finally:
        _dispose_all()
        drop = "".join(f"DROP OWNED BY {n} CASCADE; DROP ROLE {n};" for n in (
            names["alice"], names["bob"], names["analyst"], names["auditor"]))
        try:
            _admin_script(pg_url, drop)
        finally:
            db = sa.engine.make_url(pg_url).database
            _admin_script(PG_ADMIN, f"DROP DATABASE {db} WITH (FORCE)")  # what the pipeline owns
            _admin_script(PG_ADMIN, f"DROP OWNED BY {names['pipeline']} CASCADE; "
                                    f"DROP ROLE {names['pipeline']};")


@pytest.fixture
def pg_admin_db() -> Iterator[str]:
    """A throwaway database this test drops itself (after the roles that own objects in
    it): the shared fixture would drop it first."""
    from conftest import make_pg_db, require_servers

    require_servers()
    url, _drop = make_pg_db()
    yield url
    try:
        _drop()
    except Exception:  # noqa: BLE001 - already dropped by the test's own clean-up
        pass


pytestmark = pytest.mark.servers


def test_analyst_role_reads_every_view_and_cannot_write(pg_admin_db, tmp_path, monkeypatch):
    with deployment(pg_admin_db, tmp_path) as d:
        alice = d.names["alice"]
        monkeypatch.setenv("OT_ANALYST_URL", d.analyst)
        monkeypatch.setenv("OT_WAREHOUSE_URL", d.pipeline)
        wb = explore.open_workbench(load_config())
        assert wb.ok, wb.problem
        assert wb.warning is None and alice in wb.where
        # every view of explore.py, with data
        view = explore.order_lookup(wb, d.oid)
        assert view.found and set(view.timeline["found_in"]) == {"mart", "2026_h1"}
        assert explore.sample_order_id(wb) is not None
        choices = explore.partner_choices(wb)
        assert len(choices) and explore.partners(wb) == sorted(choices["partner_id"])
        first, last = explore.order_dates(wb)
        assert first <= last and explore.data_horizon(wb) is not None
        summary = explore.partner_summary(wb, int(choices["partner_id"][0]), first, last)
        assert summary["per_day"]["orders"].sum() == choices["orders"][0]
        assert explore.job_runs(wb) is not None
        assert len(explore.freshness(wb)) == 3
        assert list(explore.check_results(wb).columns)[:3] == ["checked_at", "as_of", "check_name"]
        assert list(explore.open_exceptions(wb)["exception_id"]) == [1, 2]
        assert explore.resolved_exceptions(wb).empty
        assert explore.compare_results(wb).empty
        # no write from a workbench connection: one line each
        mart = f"{MART}.mart_ecs_order_info"
        for sql, verb in ((f"INSERT INTO {mart} SELECT * FROM {mart}", "INSERT"),
                          (f"DELETE FROM {mart}", "DELETE"),
                          (f"DROP TABLE {mart}", "DROP TABLE"),
                          (f"UPDATE {MART}.order_tracking_exceptions SET resolved_by = 'x'",
                           "UPDATE")):
            with pytest.raises(UsageError) as refused:
                access.query(wb, sql)
            line = str(refused.value)
            assert "\n" not in line and line.startswith("the workbench is read-only")
            assert f"cannot execute {verb} in a read-only transaction" in line
            with wb.db.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError,
                                                                match="read-only transaction"):
                conn.exec_driver_sql(sql)
        assert len(access.query(wb, f"SELECT order_id FROM {mart} WHERE partner_id = :p",
                                p=int(choices["partner_id"][0]))) == choices["orders"][0]
        # beneath the session, the role: with READ ONLY lifted it still may not write
        for sql, why in ((f"INSERT INTO {mart} SELECT * FROM {mart}", "permission denied"),
                         (f"DELETE FROM {mart}", "permission denied"),
                         (f"DROP TABLE {mart}", "must be owner"),
                         (f"UPDATE {MART}.order_tracking_exceptions SET resolved_by = 'x'",
                          "permission denied"),
                         (f"SELECT * FROM {CONTROL}.ot_job_locks", "permission denied"),
                         ("SELECT * FROM settlement_public.ecs_order_info_raw",
                          "permission denied")):
            with pytest.raises(sa.exc.ProgrammingError, match=why):
                run_sql(d.analyst, f"SET TRANSACTION READ WRITE; {sql}")
        # the one write: through the procedure, recording who
        done = explore.resolve_exception(wb, 2, "duplicate cleared by rerun")
        assert done["resolved_by"] == alice and done["resolved_at"] is not None
        assert done["notes"] == "resolved: duplicate cleared by rerun"
        with pytest.raises(UsageError, match="already resolved"):
            explore.resolve_exception(wb, 2, "again")
        with pytest.raises(UsageError, match="note is required"):
            explore.resolve_exception(wb, 1, " ")
        assert list(explore.resolved_exceptions(wb)["exception_id"]) == [2]
        # the procedure itself refuses what the workbench checks first
        with pytest.raises(sa.exc.DBAPIError, match="is not open"):
            run_sql(d.analyst, f"CALL {MART}.ot_resolve_exception(2, 'twice')")
        with pytest.raises(sa.exc.DBAPIError, match="note is required"):
            run_sql(d.analyst, f"CALL {MART}.ot_resolve_exception(1, '')")
        assert run_sql(d.pipeline, f"SELECT exception_id, resolved_by FROM {MART}."
                                   "order_tracking_exceptions ORDER BY 1") == [(1, None), (2, alice)]
        wb.close()

        # the auditor reads the run records and the exceptions log, no orders, no resolving
        assert scalar(d.auditor, f"SELECT resolved_by FROM {MART}.order_tracking_exceptions "
                                 "WHERE exception_id = 2") == alice
        assert scalar(d.auditor, f"SELECT COUNT(*) FROM {CONTROL}.ot_batches") > 0
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            run_sql(d.auditor, f"SELECT COUNT(*) FROM {mart}")
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied for procedure"):
            run_sql(d.auditor, f"CALL {MART}.ot_resolve_exception(1, 'not mine')")
        db = open_database("warehouse", d.auditor)
        with db.engine.begin() as conn, pytest.raises(PermissionMissing, match="EXECUTE on"):
            resolve_in(conn, load_config(), db.backend, 1, "not mine to resolve")
        db.dispose()
        # the pipeline resolves through the same procedure, as itself
        assert resolve_exception(1, "period created", warehouse=d.pipeline)["resolved_by"] \
            == d.names["pipeline"]


def test_history_tables_created_later_are_readable_by_the_analyst(pg_admin_db, tmp_path):
    """Rotation (the pipeline) makes new history tables after the grants were run: the
    default privileges give the analyst SELECT on them without another grant."""
    with deployment(pg_admin_db, tmp_path) as d:
        run_sql(d.pipeline, f"CREATE TABLE {MART}.hist_ecs_order_info_2026_h2 AS SELECT * "
                            f"FROM {MART}.mart_ecs_order_info LIMIT 3")
        assert scalar(d.analyst, f"SELECT COUNT(*) FROM {MART}.hist_ecs_order_info_2026_h2") == 3
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            run_sql(d.analyst, "SET TRANSACTION READ WRITE; "
                               f"DELETE FROM {MART}.hist_ecs_order_info_2026_h2")


def test_a_v3_warehouse_upgrades(pair):
    """A warehouse made at schema version 3 (no resolved_by, no procedure) gains both on
    the next run, and resolving records the user."""
    from ot_core.simulate import simulate

    simulate("2026-03-01", start="2026-02-27", orders_per_day=10, seed=4, source=pair.source_url)
    run_cycle("2026-03-01T00:00:00Z", source=pair.source_url, warehouse=pair.warehouse_url)
    table = f"{MART}.order_tracking_exceptions"
    run_sql(pair.warehouse_url, f"ALTER TABLE {table} DROP COLUMN resolved_by")
    if pair.kind == "servers":
        run_sql(pair.warehouse_url, f"DROP PROCEDURE {MART}.ot_resolve_exception")
    run_sql(pair.warehouse_url, f"UPDATE {CONTROL}.ot_schema_version SET version = 3")
    run_sql(pair.warehouse_url, f"INSERT INTO {table} (exception_id, source_table, "
                                "exception_type, detected_at) VALUES (1, 'ecs_order_info', "
                                "'DUPLICATE_KEYS', TIMESTAMP '2026-03-01 00:00:00')")
    done = resolve_exception(1, "checked", warehouse=pair.warehouse_url)  # ensure upgrades first
    assert scalar(pair.warehouse_url,
                  f"SELECT MAX(version) FROM {CONTROL}.ot_schema_version") == schema.SCHEMA_VERSION == 4
    expected = (sa.engine.make_url(pair.warehouse_url).username if pair.kind == "servers"
                else __import__("getpass").getuser())
    assert done["resolved_by"] == expected and done["notes"] == "resolved: checked"


def test_analyst_url_falls_back_with_one_warning(monkeypatch, tmp_path, caplog):
    pw = tmp_path / "analyst-password"
    pw.write_text("s3cret-analyst-pw\n")
    monkeypatch.delenv("OT_ANALYST_URL", raising=False)
    monkeypatch.delenv("OT_ANALYST_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("OT_WAREHOUSE_URL", "postgresql+psycopg2://etl:pipeline-pw@db.example/wh")
    url, warning = analyst_url()
    assert url.username == "etl" and warning == ANALYST_FALLBACK and "\n" not in warning
    monkeypatch.setenv("OT_WAREHOUSE_URL", f"duckdb:///{tmp_path}/w.duckdb")
    assert analyst_url()[1] is None  # a file has no roles: opened read-only anyway
    monkeypatch.setenv("OT_ANALYST_URL", "postgresql+psycopg2://alice@127.0.0.1:1/wh")
    monkeypatch.setenv("OT_ANALYST_PASSWORD_FILE", str(pw))
    url, warning = analyst_url()
    assert warning is None and url.username == "alice" and url.password == "s3cret-analyst-pw"
    wb = explore.open_workbench(load_config())  # unreachable host: one line, masked
    assert not wb.ok and "s3cret-analyst-pw" not in (wb.problem or "")
    assert "alice:***@127.0.0.1:1" in wb.where
    assert redact("password s3cret-analyst-pw leaked") == "password *** leaked"


def test_the_workbench_says_it_reads_with_the_pipeline_role(servers, monkeypatch, caplog):
    simulate_url = servers.source_url
    from ot_core.simulate import simulate

    simulate("2026-03-01", start="2026-02-27", orders_per_day=10, seed=4, source=simulate_url)
    run_cycle("2026-03-01T00:00:00Z", source=simulate_url, warehouse=servers.warehouse_url)
    monkeypatch.delenv("OT_ANALYST_URL", raising=False)
    monkeypatch.setenv("OT_WAREHOUSE_URL", servers.warehouse_url)
    with caplog.at_level("WARNING", logger="ot"):
        wb = explore.open_workbench(load_config())
    assert wb.ok and wb.warning == ANALYST_FALLBACK
    assert ANALYST_FALLBACK in wb.message().text
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [ANALYST_FALLBACK]
    with pytest.raises(UsageError, match="read-only"):  # still a read-only session
        access.query(wb, f"DELETE FROM {MART}.mart_ecs_order_info")
    wb.close()


def test_redshift_sessions_begin_read_only(pg_url):
    """Redshift's read-only session is psycopg2's BEGIN READ ONLY: the same driver on
    PostgreSQL shows it refuses a write (there is no Redshift here)."""
    url = sa.engine.make_url(pg_url)
    _, kwargs = RedshiftBackend.read_only(url)
    eng = sa.create_engine(url, **kwargs)
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                conn.exec_driver_sql("CREATE TABLE t (x int)")
    finally:
        eng.dispose()
    db = open_database("warehouse", pg_url, read_only=True)  # PostgreSQL's own way
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "on"
    finally:
        db.dispose()


def test_roles_sql_per_engine_and_names_checked():
    cfg = load_config()
    pg = role_script(cfg, backend="postgresql", database="wh").sql()
    rs = role_script(cfg, backend="redshift", database="wh").sql()
    assert 'CREATE ROLE "ot_pipeline" LOGIN;' in pg and 'CREATE ROLE "ot_analyst" NOLOGIN;' in pg
    assert 'GRANT CONNECT, TEMPORARY ON DATABASE "wh" TO "ot_pipeline";' in pg
    assert (f'GRANT EXECUTE ON PROCEDURE "{MART}"."ot_resolve_exception"(BIGINT, VARCHAR) '
            'TO "ot_analyst";') in pg
    assert 'CREATE USER "ot_pipeline" PASSWORD DISABLE;' in rs
    assert 'CREATE ROLE "ot_analyst";' in rs and "CONNECT" not in rs
    assert (f'ALTER DEFAULT PRIVILEGES FOR USER "ot_pipeline" IN SCHEMA "{MART}" GRANT SELECT '
            'ON TABLES TO ROLE "ot_analyst";') in rs
    assert 'GRANT TEMPORARY ON DATABASE "wh" TO "ot_pipeline";' in rs
    assert 'GRANT ROLE "sys:monitor" TO "ot_pipeline";' in rs and "sys:monitor" not in pg
    # every statement names the configured schemas, none the raw schema for readers
    analyst = role_script(cfg, backend="postgresql", only=("analyst",)).sql()
    assert cfg.schemas.raw not in analyst and "INSERT" not in analyst and "UPDATE" not in analyst
    with pytest.raises(UsageError, match="analyst role name"):
        role_script(cfg, backend="postgresql", names={"analyst": 'x"; DROP ROLE postgres; --'})
    res = CliRunner().invoke(main, ["roles", "--sql"],
                             env={"OT_WAREHOUSE_URL": "duckdb:////tmp/none.duckdb"})
    assert res.exit_code == 2 and "has no roles" in res.output and "--backend" in res.output
    rs_proc = RedshiftBackend(sa.engine.make_url("redshift+psycopg2://").get_dialect()())
    ddl = rs_proc.resolver_statements(MART, f'"{MART}"."order_tracking_exceptions"')
    assert ddl[0].startswith(f'CREATE OR REPLACE PROCEDURE "{MART}"."ot_resolve_exception"')
    assert "SECURITY DEFINER" in ddl[0] and "SESSION_USER" in ddl[0]
    assert ddl[1] == (f'REVOKE EXECUTE ON PROCEDURE "{MART}"."ot_resolve_exception"'
                      "(BIGINT, VARCHAR) FROM PUBLIC")


def test_serve_never_starts_without_a_token(tmp_path):
    """`ot serve` refuses (exit 2, one line) without a token, with a short one or an
    unreadable file, and for an unknown notebook; the token never reaches its output."""
    from ot_core.workbench.serve import notebook_path, view_token

    cli = CliRunner()
    clean = {"OT_VIEW_TOKEN": None, "OT_VIEW_TOKEN_FILE": None}
    res = cli.invoke(main, ["serve", "partner_dashboard"], env=clean)
    assert res.exit_code == 2 and "needs a login: set OT_VIEW_TOKEN" in res.output
    res = cli.invoke(main, ["serve", "partner_dashboard"], env={**clean, "OT_VIEW_TOKEN": "pw12"})
    assert res.exit_code == 2 and "shorter than 16 characters" in res.output
    res = cli.invoke(main, ["serve", "partner_dashboard"],
                     env={**clean, "OT_VIEW_TOKEN_FILE": str(tmp_path / "missing")})
    assert res.exit_code == 2 and "OT_VIEW_TOKEN_FILE cannot be read" in res.output
    token = "t0ken-" + uuid.uuid4().hex
    res = cli.invoke(main, ["serve", "nope"], env={**clean, "OT_VIEW_TOKEN": token})
    assert res.exit_code == 2 and "partner_dashboard" in res.output and token not in res.output
    (tmp_path / "tok").write_text(token + "\n")
    env = {"OT_VIEW_TOKEN_FILE": str(tmp_path / "tok"), "OTHER": "x"}
    assert view_token(env) == token and env == {"OTHER": "x"}  # taken out for the kernels
    assert redact(f"token={token}") == "token=***"
    assert notebook_path("pipeline_health").name == "pipeline_health.ipynb"
