"""Redshift's S3 staging against a real S3-protocol server (moto's, on a loopback port,
started here): what a landing writes is Parquet that pyarrow reads back identical, in the raw
table's column order, named exactly by the COPY's manifest; it is deleted once the landing
ends, and what a landing killed between upload and COPY left is swept by the next one.

No Redshift cluster runs here: the COPY is rendered and parsed as Redshift SQL (and its
parameters checked), never executed. The fallback multi-row INSERT runs on PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2
from sqlglot import exp

from ot_core.config import RedshiftConfig, load_config, parse_config
from ot_core.db.sql import Renderer, parse_check
from ot_core.engines import backend_for
from ot_core.engines.redshift import RedshiftBackend
from ot_core.engines.redshift_s3 import MANIFEST, S3CopyLoad
from ot_core.engines.strategies import LoadSite
from ot_core.errors import ConfigError
from ot_core.pipeline.context import CycleContext
from ot_core.pipeline.cycle import run_cycle
from ot_core.simulate import simulate

CFG = load_config()
RS = backend_for(RedshiftDialect_psycopg2())
ROLE = "arn:aws:iam::123456789012:role/ot-redshift-copy"
SECRET = "s3cr3t-never-printed-" + uuid.uuid4().hex[:8]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server in this process, on a loopback port; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch) -> str:
    """A fresh bucket; the standard AWS variables point every client at the local server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    import boto3

    name = f"ot-stage-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _client():
    import boto3

    return boto3.client("s3")


def _keys(bucket: str, prefix: str = "") -> list[str]:
    out = _client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in out)


def _loader(bucket: str, **settings) -> S3CopyLoad:
    cfg = RedshiftConfig(**{"s3_uri": f"s3://{bucket}/ot/staging", "iam_role": ROLE,
                            **settings})
    load = RS.batch_load(LoadSite(render=Renderer(RS).render, redshift=cfg))
    assert isinstance(load, S3CopyLoad)
    return load


@pytest.fixture(scope="module")
def landed(tmp_path_factory) -> dict[str, pa.Table]:
    """Each raw table exactly as a cycle landed it (SQLite → DuckDB): the batches to stage."""
    tmp = tmp_path_factory.mktemp("landed")
    src, wh = f"sqlite:///{tmp}/source.sqlite", f"{tmp}/warehouse.duckdb"
    simulate("2026-03-01", start="2026-02-25", orders_per_day=80, seed=5, source=src)
    run_cycle("2026-03-01T00:00:00Z", source=src, warehouse=f"duckdb:///{wh}")
    con = duckdb.connect(wh, read_only=True)
    try:
        return {t: con.sql(f"SELECT * FROM {CFG.schemas.raw}.{t}_raw ORDER BY _raw_id")
                .to_arrow_table() for t in CFG.tables}
    finally:
        con.close()


def _pyarrow_s3(endpoint: str):
    from pyarrow import fs

    return fs.S3FileSystem(access_key="testing", secret_key=SECRET, region="us-east-1",
                           endpoint_override=endpoint.removeprefix("http://"), scheme="http")


def _chunks(data: pa.Table, n: int) -> list[pa.Table]:
    step = -(-data.num_rows // n)
    return [data.slice(i, step) for i in range(0, data.num_rows, step)]


def test_a_batch_is_staged_as_parquet_read_back_identical_then_deleted(
        bucket, landed, s3_server):
    load = _loader(bucket, copy_min_rows=1)
    schema = CFG.schemas.raw
    statements = {}
    for table, data in landed.items():
        assert data.num_rows > 100, table
        for chunk in _chunks(data, 3):
            load.add(None, schema, f"{table}_raw", chunk)  # staged: no database touched
        statements[table] = load.prepare(schema, f"{table}_raw")

    s3fs = _pyarrow_s3(s3_server)
    run_prefix = load.stage.prefix
    assert run_prefix.startswith("ot/staging/") and len(_keys(bucket)) == 4 * len(landed)
    for table, data in landed.items():
        folder = f"{run_prefix}{schema}.{table}_raw/"
        keys = sorted(_keys(bucket, folder), key=lambda k: k.endswith(MANIFEST))
        assert keys == [f"{folder}part-0000{i}.parquet" for i in range(3)] + [folder + MANIFEST]
        # pyarrow's own S3 client reads back exactly what was landed, columns in order
        back = pa.concat_tables(pq.read_table(f"{bucket}/{k}", filesystem=s3fs)
                                for k in keys[:3])
        assert back.column_names == data.column_names  # COPY loads Parquet by position
        assert back.equals(data), table
        # the manifest names exactly those parts, mandatory, with their true sizes
        body = json.loads(_client().get_object(Bucket=bucket, Key=keys[3])["Body"].read())
        assert [e["url"] for e in body["entries"]] == [f"s3://{bucket}/{k}" for k in keys[:3]]
        for entry, key in zip(body["entries"], keys[:3], strict=True):
            size = _client().head_object(Bucket=bucket, Key=key)["ContentLength"]
            assert entry["mandatory"] is True and entry["meta"]["content_length"] == size
        # one COPY per table per batch, from that manifest, parsed as Redshift SQL
        sql, params = statements[table]
        assert params == {"manifest": f"s3://{bucket}/{keys[3]}", "iam_role": ROLE}
        tree = parse_check(sql, "redshift")
        assert isinstance(tree, exp.Copy)
        assert tree.this.name == f"{table}_raw" and tree.this.db == schema
        assert [f.name for f in tree.args["files"]] == ["manifest"]
        assert tree.args["credentials"].args["iam_role"].name == "iam_role"
        flags = {p.this.name.upper(): p.expression.name.upper() if p.expression else None
                 for p in tree.args["params"]}
        assert flags == {"FORMAT": "PARQUET", "MANIFEST": None}

    load.release()  # the landing transaction ended
    assert _keys(bucket) == []


def test_a_small_batch_stages_nothing_and_is_held_for_insert(bucket, landed):
    data = landed["ecs_order_info"]
    load = _loader(bucket, copy_min_rows=data.num_rows + 1)
    for chunk in _chunks(data, 2):
        load.add(None, "s", "ecs_order_info_raw", chunk)
    assert load.prepare("s", "ecs_order_info_raw") is None
    assert _keys(bucket) == []
    assert pa.concat_tables(load.held["ecs_order_info_raw"]).equals(data)


def test_crossing_the_threshold_stages_what_was_held(bucket, landed):
    data = landed["uni_tracking_spath"]
    load = _loader(bucket, copy_min_rows=data.num_rows - 1)
    first, second = _chunks(data, 2)
    load.add(None, "s", "t", first)
    assert _keys(bucket) == []  # still possibly a small batch
    load.add(None, "s", "t", second)
    assert len(_keys(bucket)) == 2 and "t" not in load.held
    assert load.prepare("s", "t") is not None
    load.release()
    assert _keys(bucket) == []


def test_no_s3_location_warns_naming_the_setting(caplog):
    with caplog.at_level(logging.WARNING, logger="ot.cycle"):
        load = RS.batch_load(LoadSite(render=Renderer(RS).render, redshift=RedshiftConfig()))
    assert isinstance(load, S3CopyLoad) and load.stage is None
    assert "OT_REDSHIFT_S3_URI" in caplog.text and "redshift.s3_uri" in caplog.text
    assert load.prepare("s", "t") is None and load.sweep() == 0


def test_an_s3_location_without_an_iam_role_is_a_config_error():
    with pytest.raises(ConfigError, match="redshift.iam_role"):
        RS.batch_load(LoadSite(render=Renderer(RS).render,
                               redshift=RedshiftConfig(s3_uri="s3://b-ok/p")))


@pytest.mark.parametrize("key,value,needle", [
    ("s3_uri", "https://bucket/x", "s3://bucket/prefix/"),
    ("s3_uri", "s3://Bad_Bucket/x", "s3://bucket/prefix/"),
    ("s3_uri", "s3://bucket/x y", "s3://bucket/prefix/"),
    ("s3_uri", "s3://bucket/", "used only for staging"),  # the bucket's root: refused
    ("s3_uri", "s3://bucket", "used only for staging"),
    ("s3_uri", "s3://bucket//x", "s3://bucket/prefix/"),
    ("iam_role", "arn:aws:iam::12:role/x", "12-digit account"),
    ("region", "Europe", "region"),
])
def test_settings_are_validated_by_key_and_by_variable(key, value, needle):
    data = {"tables": {t: c.model_dump(exclude_none=True) for t, c in CFG.tables.items()},
            "redshift": {key: value}}
    with pytest.raises(ConfigError, match=f"redshift.{key}") as e:
        parse_config(data, "pipeline.yml")
    assert needle in str(e.value)
    var = {"s3_uri": "OT_REDSHIFT_S3_URI", "iam_role": "OT_REDSHIFT_IAM_ROLE",
           "region": "OT_REDSHIFT_S3_REGION"}[key]
    with pytest.raises(ConfigError, match=var):
        RedshiftConfig().resolved({var: value})
    assert RedshiftConfig().resolved({}) == RedshiftConfig()
    good = RedshiftConfig().resolved({"OT_REDSHIFT_S3_URI": "s3://my.bucket-1/a/b",
                                      "OT_REDSHIFT_IAM_ROLE": "default"})
    assert good.s3_uri == "s3://my.bucket-1/a/b/" and good.iam_role == "default"


KILLED = """
import pyarrow.parquet as pq, sys
from sqlalchemy_redshift.dialect import RedshiftDialect_psycopg2
from ot_core.config import load_config
from ot_core.db.sql import Renderer
from ot_core.engines import backend_for
from ot_core.engines.strategies import LoadSite
rs = backend_for(RedshiftDialect_psycopg2())
load = rs.batch_load(LoadSite(render=Renderer(rs).render,
                              redshift=load_config().redshift.resolved()))
load.min_rows = 1  # stage even this small batch
load.add(None, "settlement_public", "ecs_order_info_raw", pq.read_table(sys.argv[1]))
print(load.stage.run, flush=True)
load.prepare("settlement_public", "ecs_order_info_raw")
print("not killed", flush=True)
"""


def _context() -> CycleContext:
    """A cycle context on the Redshift engine; its bulk load never touches the connection
    (there is no cluster here), so none is given."""
    return CycleContext.open(None, CFG, RS, 0)  # type: ignore[arg-type]


def test_a_kill_between_upload_and_copy_leaves_objects_the_next_landing_sweeps(
        bucket, landed, tmp_path, monkeypatch):
    part = tmp_path / "batch.parquet"
    pq.write_table(landed["ecs_order_info"], part)
    uri = f"s3://{bucket}/ot/staging/"
    env = {**os.environ, "OT_REDSHIFT_S3_URI": uri, "OT_REDSHIFT_IAM_ROLE": ROLE,
           "OT_FAILPOINT": "before_copy:ecs_order_info_raw"}
    proc = subprocess.run([sys.executable, "-c", KILLED, str(part)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # SIGKILL: nothing in finally blocks ran
    assert "not killed" not in proc.stdout
    run = proc.stdout.split()[0]
    left = _keys(bucket)
    folder = f"ot/staging/{run}/settlement_public.ecs_order_info_raw/"
    assert left == [folder + MANIFEST, f"{folder}part-00000.parquet"]

    # the next landing (as the cycle opens it) sweeps them before it stages its own
    monkeypatch.setenv("OT_REDSHIFT_S3_URI", uri)
    monkeypatch.setenv("OT_REDSHIFT_IAM_ROLE", ROLE)
    ctx = _context()
    with ctx.batch_load() as load:
        assert _keys(bucket) == []
        assert isinstance(load, S3CopyLoad) and load.stage.run != run
        load.min_rows = 1
        load.add(None, "settlement_public", "ecs_order_info_raw", landed["ecs_order_info"])
        assert load.prepare("settlement_public", "ecs_order_info_raw") is not None
        mine = _keys(bucket)
        assert len(mine) == 2 and all(k.startswith(load.stage.prefix) for k in mine)
        assert load.sweep() == 0 and _keys(bucket) == mine  # a sweep spares its own run
    assert _keys(bucket) == []  # released once the landing ended


def test_a_landing_that_fails_still_releases_what_it_staged(bucket, landed, monkeypatch):
    monkeypatch.setenv("OT_REDSHIFT_S3_URI", f"s3://{bucket}/p/")
    monkeypatch.setenv("OT_REDSHIFT_IAM_ROLE", "default")
    with pytest.raises(RuntimeError, match="the COPY failed"), _context().batch_load() as load:
        load.min_rows = 1
        load.add(None, "s", "t", landed["uni_tracking_info"])
        assert len(_keys(bucket)) == 1
        raise RuntimeError("the COPY failed")
    assert _keys(bucket) == []


def test_credentials_never_appear_in_messages(bucket, landed, caplog, monkeypatch):
    monkeypatch.setenv("OT_REDSHIFT_S3_URI", f"s3://{bucket}-missing/p/")
    monkeypatch.setenv("OT_REDSHIFT_IAM_ROLE", ROLE)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as e, \
            _context().batch_load():
        pass  # the sweep lists a bucket that does not exist
    assert "NoSuchBucket" in str(e.value) and f"{bucket}-missing" in str(e.value)
    assert SECRET not in str(e.value) and SECRET not in caplog.text


@pytest.mark.servers
def test_the_fallback_is_multi_row_insert_with_exact_values(pg_url, landed):
    """The INSERT fallback runs for real (on PostgreSQL, whose multi-row INSERT Redshift
    shares): every value back exactly, in pages of ``insert_page_rows`` rows."""
    engine = sa.create_engine(pg_url)
    data = landed["uni_tracking_spath"]
    backend = RedshiftBackend(engine.dialect)
    backend.insert_page_rows = 7
    try:
        with engine.begin() as conn:
            cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in data.schema)
            conn.exec_driver_sql(f"CREATE TABLE spath ({cols})")
            assert backend.load_arrow(conn, None, "spath", data) == data.num_rows
            back = conn.exec_driver_sql('SELECT * FROM spath ORDER BY "_raw_id"').fetchall()
        assert [tuple(r) for r in back] == list(zip(*(c.to_pylist() for c in data.columns),
                                                    strict=True))
    finally:
        engine.dispose()


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision}, {t.scale})"
    return "TEXT"


def test_the_copy_template_is_under_sql():
    assert (Path(__file__).parents[1] / "sql" / "land" / "copy_parquet.sql").is_file()


@pytest.mark.servers
def test_the_copy_parameters_are_bound_by_the_driver(pg_url, bucket):
    """The statement psycopg2 sends (its client-side binding, as on Redshift) quotes the
    manifest URL and the role as literals, and still parses as a Redshift COPY."""
    load = _loader(bucket)
    sql = load.copy_sql("settlement_public", "ecs_order_info_raw")
    params = {"manifest": f"s3://{bucket}/it's/manifest.json", "iam_role": ROLE}
    compiled = sa.text(sql).compile(dialect=RS.dialect)
    assert "%(manifest)s" in str(compiled) and "%(iam_role)s" in str(compiled)
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()
            sent = cur.mogrify(str(compiled), params).decode()
    finally:
        engine.dispose()
    tree = parse_check(sent, "redshift")
    assert isinstance(tree, exp.Copy)
    assert [f.name for f in tree.args["files"]] == [params["manifest"]]
    assert tree.args["credentials"].args["iam_role"].name == ROLE
