"""Real servers on loopback for the drop and landing tests: moto's S3 API and SFTP servers.

The first two are started by the tests, in this process, on 127.0.0.1 and a free port:

- `s3_server` (session): moto's `ThreadedMotoServer`, a real HTTP endpoint that boto3 talks to
  through `AWS_ENDPOINT_URL`. `s3_bucket` (function) points the standard AWS environment at it
  (test credentials, so no real account is ever touched) and creates a fresh bucket.
- `sftp_server` (session): an asyncssh SFTP server on its own event loop in a background
  thread (paramiko is synchronous), with its own generated ed25519 host key and key-based login
  for one user whose key pair is generated here. `sftp_site` (function) gives every test a fresh
  temporary folder as the server's chroot, and sets `TRIAL_SFTP_KEY_FILE` and
  `TRIAL_SFTP_HOST_KEY` so that the service's `open_sftp_drop` connects with the pinned key.

`SftpServer` can also be started on its own (`SftpServer.start(...)`), e.g. on a port chosen
in advance or with another host key, for the host-key and retry tests.

OpenSSH's own server, as a child process:

- `openssh_server` (session): `/usr/sbin/sshd -D -e` from Debian's `openssh-server`, on
  127.0.0.1 and a free port, with its own sshd_config, generated ed25519 host key and
  authorized client key in a temporary folder (key login only, `internal-sftp`), logging in as
  the user running the tests. Skipped if sshd is not installed, failed instead when
  `TRIAL_REQUIRE_SSHD=1` (CI). `openssh_site` (function) gives every test a fresh, empty
  folder (its absolute path is the drop URL's path: no chroot) and sets `TRIAL_SFTP_KEY_FILE`
  and `TRIAL_SFTP_HOST_KEY` like `sftp_site`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh
import boto3
import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LOOPBACK = "127.0.0.1"
TEST_REGION = "us-east-1"  # the one region where create_bucket needs no location constraint
SFTP_USER = "trialsvc"


# --- S3 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    client: S3Client  # for arranging and inspecting buckets, as an LA or an operator would


def _test_client(endpoint_url: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=TEST_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the test server; the AWS environment variables point at the server."""

    name: str
    client: S3Client
    endpoint_url: str

    def url(self, prefix: str = "") -> str:
        """`s3://bucket/prefix`, as TRIAL_DROP_URL or TRIAL_LANDING_URL would say it."""
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def put(self, key: str, body: bytes) -> str:
        """Upload `body` under `key` (as an LA would) and return its ETag without quotes."""
        return self.client.put_object(Bucket=self.name, Key=key, Body=body)["ETag"].strip('"')

    def object_keys(self, prefix: str = "") -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        return sorted(
            item["Key"]
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix)
            for item in page.get("Contents", [])
        )

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # The test server's own request log (werkzeug, INFO) quotes every object key: silence it,
    # so that searching captured logs for canary values finds only what the service logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import ThreadedMotoServer  # imported here: it takes ~2 s

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    try:
        yield S3Server(endpoint_url=endpoint_url, client=_test_client(endpoint_url))
    finally:
        server.stop()


def point_aws_environment_at(
    monkeypatch: pytest.MonkeyPatch, endpoint_url: str, config_folder: Path
) -> None:
    """The standard AWS variables, set to the test server and dummy credentials only."""
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    # No shared config or credentials file from the machine running the tests.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_folder / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_folder / "aws-credentials"))


@pytest.fixture
def s3_bucket(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> S3Bucket:
    point_aws_environment_at(monkeypatch, s3_server.endpoint_url, tmp_path_factory.mktemp("aws"))
    client = s3_server.client
    name = f"test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    return S3Bucket(name=name, client=client, endpoint_url=s3_server.endpoint_url)


# --- SFTP ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def public_key_line(key: asyncssh.SSHKey) -> str:
    """`ssh-ed25519 AAAA…`: the OpenSSH public key line, without a comment."""
    algorithm, body = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{algorithm} {body}"


def write_private_key(key: asyncssh.SSHKey, path: Path) -> Path:
    """`key` as an OpenSSH private key file readable by its owner only."""
    path.write_bytes(key.export_private_key("openssh"))
    path.chmod(0o600)
    return path


class SilentTcpServer:
    """Accepts TCP connections on loopback and never says a word (a hung SSH server).

    Counts the connections, so a test can tell how often the client tried.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._accepted: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_until_stopped, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._accepted:
            connection.close()
        self._listener.close()

    def _accept_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._accepted.append(connection)


@dataclass
class _ServerState:
    """What the server's handlers read on every connection (changed between tests)."""

    username: str
    authorized_keys: asyncssh.SSHAuthorizedKeys
    root: Path
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_connection(self) -> None:
        with self.lock:
            self.connections += 1


class _OneUserKeyOnly(asyncssh.SSHServer):
    """Public-key login for one user name only; no passwords, no keyboard-interactive."""

    def __init__(self, state: _ServerState) -> None:
        self._state = state
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._state.count_connection()

    def begin_auth(self, username: str) -> bool:
        if self._conn is not None and username == self._state.username:
            self._conn.set_authorized_keys(self._state.authorized_keys)
        return True  # authentication is always required; other users have no usable key

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False


async def _close_acceptor(acceptor: asyncssh.SSHAcceptor) -> None:
    acceptor.close()
    await acceptor.wait_closed()


class SftpServer:
    """An asyncssh SFTP server on loopback, run on its own event loop in a daemon thread."""

    def __init__(
        self, state: _ServerState, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey
    ) -> None:
        self._state = state
        self.host_key = host_key
        self.client_key = client_key
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0

    @classmethod
    def start(
        cls,
        root: Path,
        client_key: asyncssh.SSHKey,
        *,
        host_key: asyncssh.SSHKey | None = None,
        port: int = 0,
        username: str = SFTP_USER,
    ) -> SftpServer:
        """A running server chrooted to `root` that accepts `client_key` for `username`."""
        # The test server's own log quotes every path it serves: keep it out of captured logs,
        # so that searching them for canary values finds only what the service logged.
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        authorized = asyncssh.import_authorized_keys(public_key_line(client_key))
        state = _ServerState(username=username, authorized_keys=authorized, root=root)
        server = cls(state, host_key or asyncssh.generate_private_key("ssh-ed25519"), client_key)
        server._thread.start()
        server._acceptor = server._run(server._listen(port))
        server.port = int(server._acceptor.sockets[0].getsockname()[1])
        return server

    def stop(self) -> None:
        if self._acceptor is not None:
            acceptor = self._acceptor
            self._acceptor = None
            # Closed on the loop's own thread: asyncio servers are not thread-safe, and closing
            # one from here raced the loop now and then (TypeError in `Server._wakeup`).
            self._run(_close_acceptor(acceptor))
        self._run(self._cancel_remaining_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def username(self) -> str:
        return self._state.username

    @property
    def root(self) -> Path:
        return self._state.root

    @root.setter
    def root(self, folder: Path) -> None:
        """The chroot of every later connection (each test gets its own folder)."""
        self._state.root = folder

    @property
    def connections(self) -> int:
        """How many TCP connections the server has accepted so far."""
        return self._state.connections

    @property
    def host_key_line(self) -> str:
        return public_key_line(self.host_key)

    def url(self, path: str = "/") -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{path}"

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_line}"

    async def _listen(self, port: int) -> asyncssh.SSHAcceptor:
        state = self._state
        return await asyncssh.listen(
            LOOPBACK,
            port,
            server_factory=lambda: _OneUserKeyOnly(state),
            server_host_keys=[self.host_key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(state.root)),
            allow_scp=False,
        )

    @staticmethod
    async def _cancel_remaining_tasks() -> None:
        """End the sessions of clients that did not close their connection."""
        current = asyncio.current_task()
        remaining = [task for task in asyncio.all_tasks() if task is not current]
        for task in remaining:
            task.cancel()
        await asyncio.gather(*remaining, return_exceptions=True)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)


@dataclass(frozen=True)
class SftpSite:
    """One test's view of the session's SFTP server: a fresh chroot folder and the drop URL."""

    server: SftpServer
    root: Path
    client_key_file: Path

    @property
    def url(self) -> str:
        return self.server.url("/")


_key_numbers = itertools.count()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    root = tmp_path_factory.mktemp("sftp-root")
    server = SftpServer.start(root, asyncssh.generate_private_key("ssh-ed25519"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp_site(
    sftp_server: SftpServer,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> SftpSite:
    """A fresh, empty chroot for this test; the service's SFTP variables point at the server."""
    root = tmp_path_factory.mktemp("sftp-chroot")
    sftp_server.root = root
    key_folder = tmp_path_factory.mktemp("sftp-client-key")
    key_file = write_private_key(sftp_server.client_key, key_folder / f"id_{next(_key_numbers)}")
    monkeypatch.setenv("TRIAL_SFTP_KEY_FILE", str(key_file))
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", sftp_server.host_key_line)
    monkeypatch.delenv("TRIAL_SFTP_KNOWN_HOSTS", raising=False)
    return SftpSite(server=sftp_server, root=root, client_key_file=key_file)


# --- OpenSSH's sshd ------------------------------------------------------------------------

SSHD = Path("/usr/sbin/sshd")
REQUIRE_SSHD_VARIABLE = "TRIAL_REQUIRE_SSHD"
PRIVILEGE_SEPARATION_FOLDER = Path("/run/sshd")


def require_sshd() -> None:
    """Skip the test if OpenSSH's server is not installed, or fail it where CI requires it."""
    missing = [str(SSHD)] if not SSHD.is_file() else []
    if shutil.which("ssh-keygen") is None:
        missing.append("ssh-keygen")
    if not missing:
        return
    reason = f"OpenSSH is not installed ({', '.join(missing)} missing): install openssh-server"
    if os.environ.get(REQUIRE_SSHD_VARIABLE) == "1":
        pytest.fail(f"{reason}; {REQUIRE_SSHD_VARIABLE}=1 requires it")
    pytest.skip(reason)


def generate_key_pair(path: Path) -> str:
    """An ed25519 key pair made by ssh-keygen (`path`, `path.pub`); returns the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    algorithm, body = path.with_suffix(".pub").read_text().split()[:2]
    return f"{algorithm} {body}"


def sshd_config(folder: Path, port: int, username: str) -> str:
    """A config that serves key-authenticated SFTP to `username` only, on loopback."""
    return "\n".join(
        [
            f"ListenAddress {LOOPBACK}",
            f"Port {port}",
            f"HostKey {folder / 'ssh_host_ed25519_key'}",
            f"PidFile {folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            f"AllowUsers {username}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


class OpenSshServer:
    """OpenSSH's sshd in the foreground (`-D -e`), a child process in its own process group."""

    def __init__(self, folder: Path, port: int, username: str) -> None:
        self.folder = folder
        self.port = port
        self.username = username
        self.host_key_line = ""
        self.client_key_file = folder / "client_ed25519"
        self.log_file = folder / "sshd.log"  # sshd's stderr: the server's log, not the service's
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, folder: Path, *, username: str | None = None) -> OpenSshServer:
        """A running sshd on a free loopback port that accepts a newly generated client key."""
        server = cls(folder, free_port(), username or getpass.getuser())
        server.host_key_line = generate_key_pair(folder / "ssh_host_ed25519_key")
        client_line = generate_key_pair(server.client_key_file)
        (folder / "authorized_keys").write_text(client_line + "\n")
        config = folder / "sshd_config"
        config.write_text(sshd_config(folder, server.port, server.username))
        with contextlib.suppress(OSError):  # only root can, and only root's sshd needs it
            PRIVILEGE_SEPARATION_FOLDER.mkdir(mode=0o755, exist_ok=True)
        server._launch(config)
        return server

    @property
    def host(self) -> str:
        return LOOPBACK

    def url(self, path: str) -> str:
        """`sftp://user@127.0.0.1:port/abs/path`: without a chroot, the path is absolute."""
        return f"sftp://{self.username}@{self.host}:{self.port}{path}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        """Terminate sshd and the session processes it forked (its process group)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def _launch(self, config: Path) -> None:
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            self._wait_until_listening(timeout=10)
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"sshd exited before it listened; its log:\n{self.log()}")
            if _accepts_connections(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen within {timeout} s; its log:\n{self.log()}")


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class OpenSshSite:
    """One test's folder on the session's sshd: the drop URL names its absolute path."""

    server: OpenSshServer
    root: Path

    @property
    def client_key_file(self) -> Path:
        return self.server.client_key_file

    @property
    def url(self) -> str:
        return self.server.url(str(self.root))


@pytest.fixture(scope="session")
def openssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSshServer]:
    require_sshd()
    server = OpenSshServer.start(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openssh_site(
    openssh_server: OpenSshServer,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> OpenSshSite:
    """A fresh, empty drop folder on sshd; the service's SFTP variables point at the server."""
    root = tmp_path_factory.mktemp("sshd-drop")
    monkeypatch.setenv("TRIAL_SFTP_KEY_FILE", str(openssh_server.client_key_file))
    monkeypatch.setenv("TRIAL_SFTP_HOST_KEY", openssh_server.host_key_line)
    monkeypatch.delenv("TRIAL_SFTP_KNOWN_HOSTS", raising=False)
    return OpenSshSite(server=openssh_server, root=root)
