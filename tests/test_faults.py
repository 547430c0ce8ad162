"""Faults and bad input an operator meets: every command answers with ONE line on stderr that
says what to do, no traceback, and the documented exit code (docs/errors.md#exit-codes):
2 bad usage or configuration, 3 terminal, 75 transient (retry later). Nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.configs import fast_config

from ot_core.cli import main
from ot_core.simulate import simulate

COMMANDS = [["cycle"], ["compare", "--table", "ecs"], ["rotate"], ["exceptions", "list"], ["runs"],
            ["refresh-ecs", "--dry-run"]]


def _one_line(res, code: int, *needles: str) -> str:
    err = res.stderr.strip()
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.servers
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a))
def test_an_unreachable_warehouse_is_transient_everywhere(servers, tmp_path, args):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=10, seed=3,
             source=servers.source_url)
    env = {**servers.env(), "OT_WAREHOUSE_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/x"}
    res = CliRunner().invoke(main, [*args, "--config", fast_config(tmp_path)], env=env)
    _one_line(res, 75, "transient", "127.0.0.1:1", "failed after 2 attempts")


@pytest.mark.servers
def test_a_missing_warehouse_database_is_terminal(servers, tmp_path):
    url = servers.warehouse_url.rsplit("/", 1)[0] + "/ot_no_such_database"
    res = CliRunner().invoke(main, ["exceptions", "list", "--config", fast_config(tmp_path)],
                             env={**servers.env(), "OT_WAREHOUSE_URL": url})
    _one_line(res, 3, "ot_no_such_database", "OT_WAREHOUSE_URL")


_HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("args", [["cycle", "--as-of", "2026-03-01T12:15:00Z"],
                                  ["compare", "--table", "ecs"], ["exceptions", "list"],
                                  ["refresh-ecs", "--dry-run"]], ids=lambda a: a[0])
def test_a_warehouse_file_held_by_another_process_is_transient(seeded, tmp_path, args):
    path = seeded.warehouse_url.removeprefix("duckdb:///")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, path], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        res = CliRunner().invoke(main, [*args, "--config", fast_config(tmp_path)],
                                 env=seeded.env())
        _one_line(res, 75, "transient", "warehouse")
        assert time.monotonic() - started < 60
    finally:
        holder.kill()
        holder.wait()
    again = CliRunner().invoke(main, [*args, "--config", fast_config(tmp_path)],
                               env=seeded.env())
    assert again.exit_code == 0, again.output  # free again: the same command just works


def test_a_garbage_warehouse_file_is_one_line(seeded, tmp_path):
    path = Path(seeded.warehouse_url.removeprefix("duckdb:///"))
    path.write_bytes(os.urandom(4096))
    for args in (["cycle", "--as-of", "2026-03-01T12:15:00Z"], ["exceptions", "list"]):
        res = CliRunner().invoke(main, [*args, "--config", fast_config(tmp_path)],
                                 env=seeded.env())
        _one_line(res, 3, "ot: error:", "not a DuckDB database")  # a person must restore it


def _mount_tmpfs(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_disk_full_is_one_line_and_the_next_cycle_recovers(embedded, tmp_path):
    small = tmp_path / "small"
    if not _mount_tmpfs(small, "size=256k"):  # a DuckDB file needs more than a block or two
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mount -t tmpfs is not permitted here; the disk-full test needs it")
        pytest.skip("mount -t tmpfs is not permitted here (needs root)")
    try:
        simulate("2026-03-03", start="2026-03-01", orders_per_day=400, seed=3,
                 source=embedded.source_url)
        env = {**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{small}/wh.duckdb"}
        res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-03T00:00:00Z", "--config",
                                        fast_config(tmp_path)], env=env)
        _one_line(res, 3, "No space left on device", "free space")  # a person frees it
    finally:
        subprocess.run(["umount", str(small)], check=False)
    # with room again (the same path, now on the ordinary disk) the cycle completes
    ok = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-03T00:00:00Z", "--config",
                                   fast_config(tmp_path)],
                            env={**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{small}/wh.duckdb"})
    assert ok.exit_code == 0, ok.output


def test_a_read_only_filesystem_is_one_line(embedded, tmp_path):
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "ro,size=1m"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mount -t tmpfs is not permitted here; the read-only test needs it")
        pytest.skip("mount -t tmpfs is not permitted here (needs root)")
    try:
        simulate("2026-03-02", start="2026-03-01", orders_per_day=10, seed=3,
                 source=embedded.source_url)
        env = {**embedded.env(), "OT_WAREHOUSE_URL": f"duckdb:///{ro}/wh.duckdb"}
        res = CliRunner().invoke(main, ["cycle", "--as-of", "2026-03-01T12:00:00Z"], env=env)
        _one_line(res, 3, "read-only", "writable place")
    finally:
        subprocess.run(["umount", str(ro)], check=False)


@pytest.mark.parametrize("args, needle", [
    (["compare", "--table", "ecs", "--month", "9999-12"], "9999-12"),
    (["compare", "--table", "ecs", "--key-range", "0:99999999999999999999"], "BIGINT"),
    (["cycle", "--as-of", "0001-01-01"], "0001-01-01"),
    (["cycle", "--catch-up", "--step", "0m"], "zero"),
])
def test_bad_values_are_usage_errors(seeded, args, needle):
    res = CliRunner().invoke(main, args, env=seeded.env())
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_a_missing_sqlite_source_is_not_created(tmp_path):
    src = tmp_path / "nope" / "deeper" / "source.sqlite"
    res = CliRunner().invoke(main, ["cycle"], env={
        "OT_SOURCE_URL": f"sqlite:///{src}", "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"})
    _one_line(res, 2, str(src), "ot simulate")
    assert not src.parent.parent.exists()


def test_an_unencoded_at_in_a_password_is_one_line_and_shows_nothing_of_it(tmp_path):
    res = CliRunner().invoke(main, ["cycle"], env={
        "OT_SOURCE_URL": "mysql+pymysql://etl:s3cr@tword@127.0.0.1:1/ecs",
        "OT_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"})
    err = _one_line(res, 2, "%40")
    for part in ("s3cr", "tword"):
        assert part not in res.output, err


@pytest.mark.servers
def test_a_bogus_driver_option_is_one_line(servers, tmp_path):
    res = CliRunner().invoke(main, ["cycle", "--config", fast_config(tmp_path)], env={
        **servers.env(), "OT_SOURCE_URL": servers.source_url + "?charset=bogus"})
    _one_line(res, 3, "ot: error: cannot connect to the source", "options")


def test_rotate_refuses_an_instant_ahead_of_the_clock(seeded):
    res = CliRunner().invoke(main, ["rotate", "--as-of", "2099-12-01"], env=seeded.env())
    _one_line(res, 2, "ahead of the warehouse's clock", "no table was created")
    import sqlalchemy as sa

    eng = sa.create_engine(seeded.warehouse_url)
    with eng.connect() as c:
        hist = [r[0] for r in c.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'hist_%'")]
    eng.dispose()
    assert not [h for h in hist if "_2099_" in h or "_2030_" in h], hist
    ok = CliRunner().invoke(main, ["rotate"], env=seeded.env())
    assert ok.exit_code == 0, ok.output


class _Proxy:
    """A TCP forwarder on a loopback port in front of the MariaDB source: stopping it is, to
    the pipeline, the server going away mid-read (every connection cut, new ones refused)."""

    def __init__(self, target: tuple[str, int], port: int = 0):
        import socket
        import threading

        self.target, self.socks, self.lock = target, [], threading.Lock()
        self.stopped = False
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if self.stopped:  # accepted as the proxy stopped: cut it like the others
                    for s in (client, upstream):
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    return
                self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b) -> None:
        import socket

        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:  # shut down before closing: a close alone leaves the other pump's recv
            for s in (a, b):  # holding the socket open, and the server's session with it
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self) -> None:
        import socket

        try:  # wakes the accepting thread (a plain close would leave it accepting)
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        with self.lock:
            self.stopped = True
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:  # already shut by the other end: still close ours
                    pass
                s.close()


@pytest.mark.servers
@pytest.mark.parametrize("reader", ["connectorx", "dbapi"])
@pytest.mark.parametrize("how", ["cycle", "run"])
def test_a_source_lost_mid_extract_is_transient_from_every_door(servers, tmp_path, reader, how):
    """The source goes away after the first table has landed (inside the cycle's one
    landing transaction): `ot cycle` and `ot run cycle` both exit 75, nothing is half
    written, and once it is back the same command completes."""
    import sqlalchemy as sa

    simulate("2026-03-02", start="2026-03-01", orders_per_day=30, seed=3,
             source=servers.source_url)
    url = sa.engine.make_url(servers.source_url)
    proxy = _Proxy((url.host, url.port or 3306))
    via = url.set(port=proxy.port).render_as_string(hide_password=False)
    env = servers.process_env(OT_SOURCE_URL=via, OT_CONFIG=fast_config(tmp_path),
                              OT_PAUSEPOINT="after_land:ecs_order_info=4",
                              OT_PAUSEPOINT_FILE=str(tmp_path / "paused"),
                              OT_SOURCE_READER=reader if reader == "dbapi" else "")
    args = (["cycle", "--as-of", "2026-03-02T00:00:00Z"] if how == "cycle" else
            ["run", "cycle", "-p", "as_of", "2026-03-02T00:00:00Z"])
    proc = subprocess.Popen([sys.executable, "-m", "ot_core", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "paused").exists():  # inside the pause: the first table is
        assert proc.poll() is None and time.monotonic() < deadline  # landed, not committed
        time.sleep(0.05)
    proxy.stop()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, (out, err)
    eng = sa.create_engine(servers.warehouse_url)
    with eng.connect() as c:
        landed = c.exec_driver_sql("SELECT COUNT(*) FROM settlement_ctl.ot_batches").scalar()
    eng.dispose()
    assert landed == 0  # the landing transaction was rolled back whole
    back = _Proxy((url.host, url.port or 3306), proxy.port)
    try:
        env.pop("OT_PAUSEPOINT")
        env.pop("OT_PAUSEPOINT_FILE")
        ok = subprocess.run([sys.executable, "-m", "ot_core", *args], env=env,
                            capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0, ok.stderr
    finally:
        back.stop()


@pytest.mark.servers
@pytest.mark.slow
def test_a_source_user_limited_to_two_connections_is_read_through_one(servers, tmp_path):
    """connectorx opens a pool of its own; a user allowed two connections cannot have it.
    The cycle asks the source for the user's spare connections first and reads through the
    DB-API cursor it already holds (with a warning saying how to skip the check), instead of
    letting connectorx wait out its pool's timeout."""
    import uuid

    import sqlalchemy as sa

    simulate("2026-03-02", start="2026-03-01", orders_per_day=30, seed=3,
             source=servers.source_url)
    url = sa.engine.make_url(servers.source_url)
    user = f"ot_two_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(servers.source_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY 'pw' "
                          "WITH MAX_USER_CONNECTIONS 2")
        c.exec_driver_sql(f"GRANT SELECT ON {url.database}.* TO '{user}'@'%%'")
    try:
        env = servers.process_env(OT_SOURCE_URL=url.set(username=user, password="pw")
                                  .render_as_string(hide_password=False),
                                  OT_CONFIG=fast_config(tmp_path))
        started = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "ot_core", "cycle", "--as-of",
                              "2026-03-02T00:00:00Z"], env=env, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "may open 1 more connection(s), and the fast reader needs" in res.stderr
        assert "reading through the DB-API cursor instead" in res.stderr
        assert time.monotonic() - started < 120
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()
