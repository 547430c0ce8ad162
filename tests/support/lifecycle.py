"""What the lifecycle tests share: write source rows directly, read the warehouse.

Rows are written straight into the source tables ot_core.simulate.ensure_source creates
(SQLite or MariaDB), so each test states exactly which rows exist and when.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import yaml

from ot_core.config import DEFAULT_CONFIG, PipelineConfig, parse_config
from ot_core.db.connect import open_database
from ot_core.quality.conservation import check_conservation
from ot_core.simulate import ensure_source
from ot_core.timeutil import parse_as_of, to_epoch


def T(text: str) -> int:
    """Epoch seconds of an ISO instant (UTC)."""
    return to_epoch(parse_as_of(text))


def config(ensure_periods: bool = True) -> PipelineConfig:
    data = yaml.safe_load(Path(DEFAULT_CONFIG).read_text())
    data["lifecycle"]["ensure_periods"] = ensure_periods
    return parse_config(data, "test config")


def test_config_variants_differ_only_in_rotation():
    on, off = config(True), config(False)
    assert on.lifecycle.ensure_periods and not off.lifecycle.ensure_periods
    assert on.tables == off.tables


class Source:
    """The OLTP tables of one throwaway source database."""

    def __init__(self, url: str):
        self.db = open_database("source", url)
        ensure_source(self.db)
        self.q = self.db.backend.quote

    def _exec(self, sql: str, params: dict) -> None:
        with self.db.engine.begin() as c:
            c.execute(sa.text(sql), params)

    def order(self, order_id: int, add_time: int, partner_id: int = 1001) -> None:
        self._exec(
            "INSERT INTO ecs_order_info (order_id, order_sn, partner_id, store_id, "
            "shipping_channel, consignee_country, weight_grams, declared_value, currency, "
            "add_time) VALUES (:o, :sn, :p, NULL, 'STD', 'DE', 500, 12.50, 'EUR', :t)",
            {"o": order_id, "sn": f"SN{order_id}", "p": partner_id, "t": add_time})

    def state(self, order_id: int, update_time: int, status: int = 10) -> None:
        with self.db.engine.begin() as c:
            n = c.execute(sa.text(
                "UPDATE uni_tracking_info SET status = :s, latest_event = :e, update_time = :t "
                "WHERE order_id = :o"), {"o": order_id, "s": status, "e": f"status {status}",
                                         "t": update_time}).rowcount
            if not n:
                c.execute(sa.text(
                    "INSERT INTO uni_tracking_info (order_id, tracking_no, carrier_code, status, "
                    "latest_event, update_time) VALUES (:o, :tn, 'DHL', :s, :e, :t)"),
                    {"o": order_id, "tn": f"TN{order_id}", "s": status, "e": f"status {status}",
                     "t": update_time})

    def event(self, order_id: int, path_time: int, add_time: int, code: str = "TRANSIT") -> None:
        self._exec(
            f"INSERT INTO uni_tracking_spath (order_id, {self.q('pathTime')}, path_code, "
            "path_info, path_location, add_time) VALUES (:o, :pt, :c, 'scan', 'Leipzig', :a)",
            {"o": order_id, "pt": path_time, "c": code, "a": add_time})


def wh_scalar(url: str, sql: str, params: dict | None = None):
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(sa.text(sql), params or {}).scalar()
    finally:
        eng.dispose()


def wh_rows(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(sql), params or {})]
    finally:
        eng.dispose()


def conserved(source_url: str, warehouse_url: str, cfg: PipelineConfig, as_of: int):
    src, wh = open_database("source", source_url), open_database("warehouse", warehouse_url)
    try:
        return check_conservation(src, wh, cfg, as_of)
    finally:
        src.dispose()
        wh.dispose()
