"""Pipeline configs written for a test, and what a warehouse holds: the helpers the
bad-input and fault tests compare before and after a refused command."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import yaml

from ot_core.config import DEFAULT_CONFIG, parse_config
from ot_core.contract import CONTRACTS
from ot_core.db.connect import open_database


def base_config() -> dict:
    data = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    data["lifecycle"]["enabled"] = False
    return data


def write_config(tmp: Path, data: dict, name: str = "pipeline.yml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(data))
    return p


def warehouse_state(url: str) -> dict[str, list[tuple]] | None:
    """Rows of every raw, mart and control table (timestamps left out); None if no warehouse."""
    if url.startswith("duckdb:///") and not Path(url.removeprefix("duckdb:///")).exists():
        return None
    db = open_database("warehouse", url)
    cfg = parse_config(base_config())
    b = db.backend
    out: dict[str, list[tuple]] = {}
    try:
        with db.engine.connect() as conn:
            if cfg.schemas.control not in {r[0] for r in conn.execute(sa.text(
                    "SELECT schema_name FROM information_schema.schemata"))}:
                return None
            for t in CONTRACTS:
                for schema, name in ((cfg.schemas.raw, f"{t}_raw"),
                                     (cfg.schemas.mart, f"mart_{t}")):
                    cols = ", ".join(b.quote(c) for c in CONTRACTS[t].column_names + ["_raw_id"])
                    out[name] = sorted(conn.execute(sa.text(
                        f"SELECT {cols} FROM {b.qualified(schema, name)}")).all())
            out["batches"] = sorted(conn.execute(sa.text(
                "SELECT batch_id, table_name, status, as_of, rows_loaded FROM "
                f"{b.qualified(cfg.schemas.control, 'ot_batches')}")).all())
            out["watermarks"] = sorted(conn.execute(sa.text(
                "SELECT table_name, watermark FROM "
                f"{b.qualified(cfg.schemas.control, 'ot_watermarks')}")).all())
    finally:
        db.dispose()
    return out


def nothing_landed(state: dict | None) -> bool:
    return state is None or not any(state.values())


def drop_column(source_url: str, table: str, column: str) -> None:
    """Recreate a source table without one contracted column (a broken view or migration)."""
    contract = CONTRACTS[table]
    eng = sa.create_engine(source_url)
    md = sa.MetaData()
    t = sa.Table(table, md, *[sa.Column(c.name, c.type) for c in contract.columns
                              if c.name != column])
    with eng.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    md.create_all(eng)
    with eng.begin() as conn:
        conn.execute(sa.insert(t).values(**{c.name: 1 for c in t.columns if
                                            isinstance(c.type, sa.Integer)},
                                         **{c.name: "x" for c in t.columns if
                                            isinstance(c.type, sa.String)}))
    eng.dispose()


def fast_config(tmp_path: Path) -> str:
    """The test config with one quick source retry: for tests that make the source fail."""
    data = base_config()
    data["cycle"].update(source_retries=1, retry_backoff_seconds=0.05)
    return str(write_config(tmp_path, data, "fast.yml"))
