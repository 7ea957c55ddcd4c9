"""Shared helpers of the end-to-end tests: a small synthetic trial with canary values planted in
every identifier and free-text field, the places the service reads and writes (drop, landing
store, warehouse) on each backend, and searches of every byte the service wrote.

Used by `test_e2e_matrix.py` ({local, S3, SFTP} drops x {DuckDB, PostgreSQL} warehouses) and
`test_dagster_privacy.py` (the local version).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import psycopg
import pytest
import sqlalchemy as sa
import xlsxwriter  # type: ignore[import-untyped]

from ingest.storage.landing.base import associated_data
from ingest.warehouse import SCHEMAS, Warehouse
from pseudonymise.keys import parse_key_text
from pseudonymise.landing_crypto import decrypt_blob
from schemas.contract import Field, Kind, Treatment
from schemas.datasets import DATASETS

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CANARY_FILE_NAME = "CANARYFILENAME"
CANARY_GARBAGE = "CANARYGARBAGE"
FIRST_UPLOAD_NS = 1_750_000_000 * 10**9
# Kinds that carry an identifier or free text: planted on a row the service accepts.
_ACCEPTED_CANARY_KINDS = frozenset({Kind.IDENTIFIER, Kind.TEXT})
# Loggers of the test servers (not the service): they quote object keys and paths.
_TEST_SERVER_LOGGERS = ("werkzeug", "moto", "asyncssh")


# --- the canary trial ------------------------------------------------------------------------


def canary(dataset: str, column: str, row: int) -> str:
    """A value found nowhere but where it was planted (14 characters, fits every field)."""
    digest = hashlib.sha256(f"{dataset}.{column}.{row}".encode()).hexdigest()[:8].upper()
    return f"CANARY{digest}"


def plant_canaries(dataset: str, content: bytes) -> tuple[bytes, list[str]]:
    """The CSV with two rows added: one with a canary in every identifier and identifying
    free-text field (otherwise valid), and one with a canary in every field (rejected; the
    free text the contract keeps, team names, is not kept on a rejected row)."""
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    header = rows[0]
    template = rows[1] if len(rows) > 1 else [""] * len(header)
    fields = {f.name: f for f in DATASETS[dataset].fields}
    planted: list[list[str]] = []
    for number, accepted_row in enumerate((True, False)):
        planted.append(
            [
                canary(dataset, name, number)
                if _personal(fields[name], accepted_row=accepted_row)
                else value
                for name, value in zip(header, template, strict=True)
            ]
        )
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([*rows, *planted])
    canaries = [value for row in planted for value in row if value.startswith("CANARY")]
    return out.getvalue().encode("utf-8"), canaries


def _personal(spec: Field, *, accepted_row: bool) -> bool:
    """Where a canary goes: identifiers and identifying free text on the row that is accepted;
    every field on the rejected row."""
    if accepted_row:
        return spec.kind in _ACCEPTED_CANARY_KINDS and spec.treatment is not Treatment.KEEP
    return True


def workbook(sheets: dict[str, bytes]) -> bytes:
    """An .xlsx with one sheet per CSV, every cell written as text."""
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as book:
        for name, content in sheets.items():
            sheet = book.add_worksheet(name)
            for r, row in enumerate(csv.reader(io.StringIO(content.decode("utf-8")))):
                for c, value in enumerate(row):
                    if value:
                        sheet.write_string(r, c, value)
    return buffer.getvalue()


@dataclass(frozen=True)
class CanaryTrial:
    """Three LAs' returns (one workbook each, every dataset, canaries planted) and a garbage
    file, plus the allocation of those three LAs."""

    allocation_csv: str
    deliveries: list[tuple[str, str, bytes]]  # (la_code, file name, content), in upload order
    canaries: tuple[str, ...]

    @property
    def la_codes(self) -> list[str]:
        return sorted({la for la, _, _ in self.deliveries})


# Each dataset once, split over three LAs (related datasets together): every field of the
# contract carries a canary, at a third of the cost of every dataset for every LA.
LA_DATASETS = (
    ("people", "episodes", "csc_events"),
    ("keyworkers", "practice_activity"),
    ("score15", "withdrawals"),
)


def canary_trial(folder: Path) -> CanaryTrial:
    """`generate_trial(families_per_la=3, mess=False)` restricted to its first three LAs, each
    delivering one workbook of its share of `LA_DATASETS`; the second LA also a garbage file."""
    from synthetic import generate_trial

    manifest = generate_trial(folder, seed=7, families_per_la=3, mess=False)
    las = [entry.la_code for entry in manifest.allocation[: len(LA_DATASETS)]]
    lines = (folder / "allocation.csv").read_text().splitlines()
    allocation = "\n".join([lines[0], *(line for line in lines[1:] if line[:3] in las)]) + "\n"
    canaries: list[str] = [CANARY_FILE_NAME, CANARY_GARBAGE]
    deliveries = []
    for la, datasets in zip(las, LA_DATASETS, strict=True):
        sheets = {}
        for drop_file in manifest.files:
            [dataset] = drop_file.datasets
            if drop_file.la_code == la and dataset in datasets:
                content = (folder / drop_file.path).read_bytes()
                sheets[dataset], planted = plant_canaries(dataset, content)
                canaries += planted
        deliveries.append((la, f"{CANARY_FILE_NAME} return {la}.xlsx", workbook(sheets)))
    garbage = f"PK\x03\x04 {CANARY_GARBAGE} not a workbook".encode()
    deliveries.append((las[1], f"{CANARY_FILE_NAME}.xlsx", garbage))
    return CanaryTrial(allocation, deliveries, tuple(dict.fromkeys(canaries)))


# --- searching what was written --------------------------------------------------------------


def canaries_in(data: bytes, canaries: Iterable[str]) -> list[str]:
    lowered = data.lower()
    return [c for c in canaries if c.lower().encode() in lowered]


def files_holding(root: Path, canaries: Iterable[str]) -> dict[str, list[str]]:
    """Every file under `root` that holds a canary (case-insensitive), with the canaries."""
    wanted = list(canaries)
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            hits = canaries_in(path.read_bytes(), wanted)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def duckdb_text_holding(url: str, canaries: Iterable[str]) -> dict[str, list[str]]:
    """Every text column of every DuckDB table, searched by SQL (DuckDB compresses strings on
    disk, so a byte search of its file alone would not be enough)."""
    path = url.removeprefix("duckdb:///")
    found: dict[str, list[str]] = {}
    with duckdb.connect(path, read_only=True) as conn:
        columns = conn.execute(
            "SELECT c.table_schema, c.table_name, c.column_name "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_catalog, table_schema, table_name) "
            "WHERE c.data_type = 'VARCHAR' AND t.table_type = 'BASE TABLE'"
        ).fetchall()
        assert columns, "the warehouse has text columns to search"
        for schema, table, column in columns:
            query = f'SELECT string_agg("{column}", chr(10)) FROM "{schema}"."{table}"'  # noqa: S608
            [(text,)] = conn.execute(query).fetchall()
            hits = canaries_in((text or "").encode(), canaries)
            if hits:
                found[f"{schema}.{table}.{column}"] = hits
    return found


def postgres_tables_holding(url: str, canaries: Iterable[str]) -> dict[str, list[str]]:
    """Every table of the database (any schema but the system's), dumped whole by COPY."""
    wanted = list(canaries)
    found: dict[str, list[str]] = {}
    with psycopg.connect(libpq_url(url)) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert tables, "the database has tables to search"
        for schema, table in tables:
            dump = bytearray()
            with conn.cursor().copy(f'COPY "{schema}"."{table}" TO STDOUT') as copy:
                for chunk in copy:
                    dump += chunk
            hits = canaries_in(bytes(dump), wanted)
            if hits:
                found[f"{schema}.{table}"] = hits
    return found


class PostgresServerLog:
    """PostgreSQL's own log files as they grow from now on (at the server's own settings).

    With the logging collector on, `data_directory/log_directory`; otherwise (Debian's
    default) the server's stderr, which pg_ctlcluster writes to /var/log/postgresql/.
    """

    def __init__(self) -> None:
        self.files = self._find()
        self._sizes = {path: path.stat().st_size for path in self.files}

    def written_since(self) -> bytes:
        text = b""
        for path in self.files:
            with path.open("rb") as handle:
                handle.seek(self._sizes[path])
                text += handle.read()
        return text

    @staticmethod
    def _find() -> list[Path]:
        with psycopg.connect(PG_ADMIN) as conn:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('logging_collector', 'log_directory', 'data_directory')"
                ).fetchall()
            )
        if settings["logging_collector"] == "on":
            folder = Path(settings["data_directory"]) / settings["log_directory"]
        else:
            folder = Path("/var/log/postgresql")
        files = sorted(p for p in folder.glob("*.log") if os.access(p, os.R_OK))
        assert files, f"no readable PostgreSQL log in {folder}"
        return files


@dataclass
class Captured:
    """What the process printed (both file descriptors) and logged while capturing."""

    output: str = ""
    records: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.output + "\n".join(self.records)


class _Recorder(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(_TEST_SERVER_LOGGERS):
            self._records.append(self.format(record))


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Capture stdout and stderr at the descriptor level (subprocesses and C code too) and
    every log record at INFO and above, whatever pytest's own capturing does."""
    captured = Captured()
    recorder = _Recorder(captured.records)
    root = logging.getLogger()
    saved_level = root.level
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        text_sink = open(sink.fileno(), "w", closefd=False)  # noqa: SIM115
        root.addHandler(recorder)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(text_sink), contextlib.redirect_stderr(text_sink):
                yield captured
        finally:
            text_sink.flush()
            root.removeHandler(recorder)
            root.setLevel(saved_level)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.output = sink.read().decode("utf-8", "replace")


# --- drops -----------------------------------------------------------------------------------


class DropSite(Protocol):
    """The drop as the LAs (and the test) see it."""

    @property
    def url(self) -> str: ...

    def deliver(self, la_code: str, name: str, content: bytes) -> None: ...

    def inbox(self, la_code: str) -> list[str]: ...

    def reports(self, la_code: str) -> list[bytes]: ...


@dataclass
class FolderDropSite:
    """A drop folder: the embedded default, or an SFTP server's chroot (then `url` is
    `sftp://…` and files are written straight into the folder the server serves)."""

    root: Path
    drop_url: str = ""
    uploads: int = 0

    @property
    def url(self) -> str:
        return self.drop_url or str(self.root)

    def deliver(self, la_code: str, name: str, content: bytes) -> None:
        """Each upload a second after the one before (the upload order is the mtime's)."""
        path = self.root / la_code / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        self.uploads += 1
        moment = FIRST_UPLOAD_NS + self.uploads * 10**9
        os.utime(path, ns=(moment, moment))

    def inbox(self, la_code: str) -> list[str]:
        folder = self.root / la_code
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def reports(self, la_code: str) -> list[bytes]:
        return [p.read_bytes() for p in sorted((self.root / la_code / "reports").glob("*"))]


@dataclass
class S3DropSite:
    """`s3://bucket/drop/<la_code>/…`, uploaded to as an LA would."""

    client: S3Client
    bucket: str
    prefix: str = "drop/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def deliver(self, la_code: str, name: str, content: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=f"{self.prefix}{la_code}/{name}", Body=content
        )

    def inbox(self, la_code: str) -> list[str]:
        inbox = f"{self.prefix}{la_code}/"
        return [key[len(inbox) :] for key in self._keys(inbox) if "/" not in key[len(inbox) :]]

    def reports(self, la_code: str) -> list[bytes]:
        return [self._get(key) for key in self._keys(f"{self.prefix}{la_code}/reports/")]

    def _keys(self, prefix: str) -> list[str]:
        return s3_keys(self.client, self.bucket, prefix)

    def _get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def s3_keys(client: S3Client, bucket: str, prefix: str = "") -> list[str]:
    paginator = client.get_paginator("list_objects_v2")
    return sorted(
        item["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    )


def new_bucket(client: S3Client) -> str:
    name = f"test-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    return name


# --- landing stores --------------------------------------------------------------------------


class LandingSite(Protocol):
    @property
    def url(self) -> str: ...

    def objects(self) -> dict[str, bytes]:
        """Every object or file in the store, by its path relative to the store."""
        ...


@dataclass
class FolderLandingSite:
    root: Path

    @property
    def url(self) -> str:
        return str(self.root)

    def objects(self) -> dict[str, bytes]:
        if not self.root.is_dir():
            return {}
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


@dataclass
class S3LandingSite:
    client: S3Client
    bucket: str
    prefix: str = "landing/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def objects(self) -> dict[str, bytes]:
        return {
            key[len(self.prefix) :]: self.client.get_object(Bucket=self.bucket, Key=key)[
                "Body"
            ].read()
            for key in s3_keys(self.client, self.bucket, self.prefix)
        }


def landed_plaintexts(objects: dict[str, bytes], landing_key_text: str) -> list[bytes]:
    """Decrypt every landed blob with the landing key, checking that the store holds nothing
    but `<la>/<submission>.bin` ciphertext and its `.json` sidecar."""
    key = parse_key_text(landing_key_text)
    contents = []
    for name, data in objects.items():
        la_code, _, file_name = name.partition("/")
        submission_id, _, suffix = file_name.rpartition(".")
        assert suffix in ("bin", "json"), name
        if suffix == "json":
            assert json.loads(data)["submission_id"] == submission_id
            continue
        assert not data.startswith(b"PK"), name
        contents.append(decrypt_blob(key, data, associated_data(la_code, submission_id)))
    return contents


# --- warehouses ------------------------------------------------------------------------------


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def require_postgres() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")


@contextlib.contextmanager
def postgres_database(prefix: str = "trial_e2e", *, template: str | None = None) -> Iterator[str]:
    """A fresh database on the local server (`postgresql+psycopg://…`), dropped afterwards:
    empty, or a copy of the database named `template`."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copied}')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1).replace(
        "postgresql+psycopg2://", "postgresql://", 1
    )


def warehouse_holding(url: str, canaries: Iterable[str]) -> dict[str, list[str]]:
    if url.startswith("duckdb:"):
        return duckdb_text_holding(url, canaries)
    return postgres_tables_holding(url, canaries)


@dataclass(frozen=True)
class WarehouseSnapshot:
    """What must be the same on every backend: rows per table and LA, the audit trail's
    outcomes, and the tokens (the same keys make the same tokens)."""

    rows: dict[str, dict[str, int]]
    audit: list[tuple[str, str, str, str, int, int, int]]
    person_tokens: dict[str, list[str]]


def warehouse_snapshot(url: str) -> WarehouseSnapshot:
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            rows = _rows_per_la(conn)
            people = warehouse.table("clean", "people")
            tokens: dict[str, list[str]] = {}
            for la_code, token in conn.execute(sa.select(people.c.la_code, people.c.person_token)):
                tokens.setdefault(la_code, []).append(token)
        audit = sorted(
            (
                r.la_code,
                r.dataset or "",
                str(r.status),
                r.reason or "",
                r.rows_received,
                r.rows_loaded,
                r.rows_rejected,
            )
            for r in warehouse.submissions()
        )
    finally:
        warehouse.dispose()
    return WarehouseSnapshot(rows, audit, {la: sorted(t) for la, t in tokens.items()})


def _rows_per_la(conn: sa.Connection) -> dict[str, dict[str, int]]:
    """Rows per LA of every table (and `clean` view) with an `la_code` column (found through
    information_schema, which DuckDB and PostgreSQL both have)."""
    tables = conn.execute(
        sa.text(
            "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
            "WHERE c.column_name = 'la_code' "
            "AND (t.table_type = 'BASE TABLE' OR c.table_schema = 'clean') "
            "AND c.table_schema IN :schemas"
        ).bindparams(sa.bindparam("schemas", expanding=True)),
        {"schemas": list(SCHEMAS)},
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for schema, name in sorted(tables):
        table = sa.table(name, sa.column("la_code"), schema=schema)
        query = sa.select(table.c.la_code, sa.func.count()).group_by(table.c.la_code)
        counts[f"{schema}.{name}"] = {str(la): int(n) for la, n in conn.execute(query)}
    return counts
