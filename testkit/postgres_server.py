"""A throwaway Postgres server for tests and benchmarks: `initdb` + `pg_ctl` in a temp folder.

It listens on a free loopback port (and a Unix socket inside its folder), trusts local
connections, runs without fsync (nothing in it outlives the test), and is removed on `stop()`.
initdb refuses to run as root, so as root (CI) the server runs as the `postgres` user, else
`nobody`, through `runuser`. The binaries are found on PATH, under NEWSML_PG_BIN, or under
Debian's /usr/lib/postgresql/<version>/bin; without them `find_bin_dir` returns None and the
fixtures skip, saying so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "newsml"


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when Postgres is not installed."""
    candidates = []
    if os.environ.get("NEWSML_PG_BIN"):
        candidates.append(Path(os.environ["NEWSML_PG_BIN"]))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    candidates += [Path(p) for p in reversed(debian)]
    for c in candidates:
        if all((c / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One Postgres cluster; `url(db)` for connections, `create_database()` for an empty database."""

    def __init__(self, bin_dir: Path, *, max_connections: int = 200) -> None:
        self.bin_dir = bin_dir
        self.max_connections = max_connections
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="newsml-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if res.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr}{res.stdout}\n{log}")
        return res

    def start(self) -> PostgresServer:
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync",
            "--no-instructions",
        )  # fmt: skip
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={self.max_connections}"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def version(self) -> str:
        return subprocess.run(
            [str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
