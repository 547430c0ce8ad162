"""Private PostgreSQL and MariaDB instances for the soak, on their own ports in a temp dir.

The soak restarts its servers on purpose, so it never uses shared ones: each instance is
initialised in the soak's directory, listens on 127.0.0.1 on a free port, and is stopped
and removed with it. Run as root, each server runs as its system user (``postgres`` /
``mysql``), which owns its data directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str, cmd: list[str]) -> list[str]:
    """Run ``cmd`` as ``user`` when we are root (servers refuse to run as root)."""
    return ["runuser", "-u", user, "--", *cmd] if os.geteuid() == 0 else cmd


def _own(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _wait(ready, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


class PrivatePostgres:
    name = "postgresql"

    def __init__(self, base: Path):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1])
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.dir.mkdir()
        _own(self.dir, "postgres")
        subprocess.run(_as_user("postgres", [str(self.bin / "initdb"), "-D", str(self.data),
                                             "-A", "trust", "-U", "postgres", "-E", "UTF8",
                                             "--no-sync"]),
                       check=True, capture_output=True)
        self.start()

    def start(self) -> None:
        # fsync=off: a process crash (the outages here) keeps what reached the OS
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=40")
        subprocess.run(_as_user("postgres", [str(self.bin / "pg_ctl"), "-D", str(self.data),
                                             "-l", str(self.dir / "server.log"), "-w", "-o",
                                             opts, "start"]),
                       check=True, capture_output=True)
        _wait(self.ready, f"private PostgreSQL on port {self.port}")

    def crash(self) -> None:
        """Stop as a crash would: no checkpoint, sessions cut (immediate shutdown)."""
        subprocess.run(_as_user("postgres", [str(self.bin / "pg_ctl"), "-D", str(self.data),
                                             "-m", "immediate", "-w", "stop"]),
                       check=False, capture_output=True)

    def ready(self) -> bool:
        r = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                            str(self.port), "-q"], check=False)
        return r.returncode == 0

    def destroy(self) -> None:
        self.crash()


class PrivateMariaDB:
    name = "mariadb"

    def __init__(self, base: Path):
        self.dir = base / "mysql"
        self.data = self.dir / "data"
        self.port = free_port()
        self.sock = self.dir / "mysqld.sock"
        self.proc: subprocess.Popen | None = None
        self.url = f"mysql+pymysql://root@127.0.0.1:{self.port}/ot_soak"

    def init(self) -> None:
        self.dir.mkdir()
        _own(self.dir, "mysql")
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.data}",
                        "--user=mysql", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        self.start()
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS ot_soak")
        conn.close()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.sock}", "--user=mysql",
             "--skip-grant-tables", "--skip-name-resolve", "--innodb-buffer-pool-size=128M",
             "--innodb-flush-log-at-trx-commit=2", f"--log-error={self.dir / 'server.log'}",
             f"--pid-file={self.dir / 'mysqld.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        _wait(self.ready, f"private MariaDB on port {self.port}")

    def crash(self) -> None:
        """SIGKILL the server: InnoDB recovers its log on the next start."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def ready(self) -> bool:
        import pymysql

        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                            connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def destroy(self) -> None:
        self.crash()


def start_servers(base: Path) -> tuple[PrivateMariaDB, PrivatePostgres]:
    if not shutil.which("mariadb-install-db") or not shutil.which("mariadbd"):
        raise RuntimeError("mariadb-install-db / mariadbd not found (package mariadb-server)")
    maria, pg = PrivateMariaDB(base), PrivatePostgres(base)
    try:
        maria.init()
        pg.init()
    except BaseException:
        maria.destroy()
        pg.destroy()
        raise
    return maria, pg
