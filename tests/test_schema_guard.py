"""A config change that would orphan the warehouse's data (other schema names) is refused
before anything is written, naming what would move, unless the operator confirms it."""

from __future__ import annotations

from click.testing import CliRunner
from support.configs import base_config, warehouse_state, write_config

from ot_core.cli import main
from ot_core.config import parse_config
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate


def test_changing_schema_names_needs_confirmation(pair, tmp_path):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3, source=pair.source_url)
    run_cycle("2026-03-01T12:00:00Z", config=parse_config(base_config()),
              source=pair.source_url, warehouse=pair.warehouse_url)
    before = warehouse_state(pair.warehouse_url)
    moved = base_config()
    moved["schemas"]["mart"] = "ods_next"
    cfg = str(write_config(tmp_path, moved, "moved.yml"))
    cli = CliRunner()
    res = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg],
                     env=pair.env())
    assert res.exit_code == 2, res.output
    assert "schemas.mart: settlement_ods → ods_next" in res.output and "--new-schemas" in res.output
    assert warehouse_state(pair.warehouse_url) == before
    listed = cli.invoke(main, ["exceptions", "list", "--config", cfg], env=pair.env())
    assert listed.exit_code == 2, listed.output  # every command guards, not only the cycle
    ok = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg,
                           "--new-schemas"], env=pair.env())
    assert ok.exit_code == 0, ok.output
    again = cli.invoke(main, ["cycle", "--as-of", "2026-03-02T00:00:00Z", "--config", cfg],
                       env=pair.env())
    assert again.exit_code == 0, again.output  # the new names are the recorded ones now


def test_ensure_recreates_a_dropped_table_with_one_catalog_read_per_schema(pair):
    """A table dropped by hand comes back on the next ``ensure`` and nothing else is touched;
    an existing warehouse costs one catalog read per schema, not one per table (each is a
    round trip on a server)."""
    import sqlalchemy as sa

    from ot_core.config import load_config
    from ot_core.db.schema import ensure
    from ot_core.db.warehouse import Warehouse

    cfg = load_config()
    with Warehouse.open(cfg, pair.warehouse_url) as wh, wh.connect() as conn:
        with conn.begin():
            first = ensure(conn, cfg, wh.backend)
        assert f"{cfg.schemas.mart}.mart_uni_tracking_spath" in first and len(first) > 3
        with conn.begin():
            conn.exec_driver_sql(f"DROP TABLE {wh.backend.qualified(cfg.schemas.mart, 'mart_ecs_order_info')}")
        reads: list[str] = []

        def count(_conn, _cur, statement, *_args):
            if "information_schema.tables" in statement:
                reads.append(statement)

        sa.event.listen(conn, "before_cursor_execute", count)
        with conn.begin():
            again = ensure(conn, cfg, wh.backend)
        sa.event.remove(conn, "before_cursor_execute", count)
        assert again == [f"{cfg.schemas.mart}.mart_ecs_order_info"]
        schemas = {cfg.schemas.raw, cfg.schemas.mart, cfg.schemas.control}
        assert len(reads) <= len(schemas) + 1  # + the version table's home
        with conn.begin():
            assert ensure(conn, cfg, wh.backend) == []
