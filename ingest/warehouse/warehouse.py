"""The warehouse: pseudonymised returns, their history, quarantine and the audit trail.

`Warehouse` puts together the layout (`layout`), the session (`session`), the bulk path of the
database (`bulk`), loading (`loading`) and the audit trail (`audit`). Nothing here raises with a
value from a frame: database errors are replaced by their class name (their messages can
quote values) and raised without the original as context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from ingest.allocation import AllocationRow, read_allocation
from ingest.warehouse.audit import AuditTrail
from ingest.warehouse.bulk import BulkInserter, bulk_inserter_for
from ingest.warehouse.layout import (
    SchemaNames,
    build_layout,
    create_layout,
    has_plain_file_hashes,
    schema_complete,
)
from ingest.warehouse.loading import ReturnLoader
from ingest.warehouse.session import Session, WarehouseParts, create_engine
from ingest.warehouse.spool import remove_abandoned_spools


class Warehouse(ReturnLoader, AuditTrail):
    """The trial's warehouse at a SQLAlchemy URL (default: a DuckDB file, see `duckdb_url`).

    Loading returns comes from `ReturnLoader`, the audit trail from `AuditTrail`; both work on
    this warehouse's session, layout and bulk inserter.
    """

    def __init__(
        self, url: str, *, bulk_inserter: BulkInserter | None = None, schema_suffix: str = ""
    ) -> None:
        """`schema_suffix` (e.g. `__rotating`): every schema of the layout is used under its
        name plus the suffix (`clean__rotating`, ...), for building a second warehouse in the
        same database (key rotation). `table()` still takes and returns the plain names: the
        engine's `schema_translate_map` maps them, and raw SQL maps them with `schema_name`."""
        self._names = SchemaNames(schema_suffix)
        engine = create_engine(url, self._names.translate_map)
        self._dialect = engine.dialect.name
        session = Session(engine)
        layout = build_layout(with_indexes=self._dialect == "postgresql")
        inserter = bulk_inserter or bulk_inserter_for(self._dialect)
        WarehouseParts.__init__(self, session, layout, inserter)
        self._schema_created = False

    def __repr__(self) -> str:
        return f"Warehouse({self.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> sa.Engine:
        return self._session.engine

    @property
    def dialect(self) -> str:
        return self._dialect

    def dispose(self) -> None:
        self.engine.dispose()

    def schema_name(self, schema: str) -> str:
        """The name schema `schema` of the layout has in the database (suffix applied)."""
        return self._names(schema)

    def table(self, schema: str, name: str) -> sa.Table:
        """One of the warehouse's tables or `clean` views, for queries (e.g.
        `table("clean", "people")`)."""
        return self._layout.table(schema, name)

    def create_schema(self) -> None:
        """Create every schema, table and view that is missing (safe to run at every start).

        Done once per `Warehouse` object; later calls return at once.
        """
        if not self._schema_created:
            layout, names = self._layout, self._names
            run = self._session.run
            if not run(
                "looking for the warehouse schema",
                lambda conn: schema_complete(conn, layout, names),
            ):
                plain = run(
                    "looking for plain file hashes",
                    lambda conn: has_plain_file_hashes(conn, names),
                )
                run(
                    "creating the warehouse schema", lambda conn: create_layout(conn, layout, names)
                )
                if plain and self._dialect == "postgresql":
                    self._vacuum_submissions()
            self._schema_created = True

    def _vacuum_submissions(self) -> None:
        """Rewrite `ops.submissions` once its plain hashes are gone: PostgreSQL keeps the old
        row versions, values and all, until a VACUUM. (DuckDB frees the old blocks at its
        next checkpoint without overwriting them: see docs/DECISIONS.md.)"""
        quoted = self.engine.dialect.identifier_preparer.format_table(
            sa.table("submissions", schema=self._names("ops"))
        )

        def vacuum(conn: sa.Connection) -> None:
            autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
            autocommit.execute(sa.text(f"VACUUM FULL {quoted}"))

        self._session.run("rewriting the audit table", vacuum, in_transaction=False)

    @contextmanager
    def held_open(self) -> Iterator[None]:
        """For a DuckDB file: hold one connection open while a batch of work runs.

        Each transaction otherwise opens the file and, closing the last connection to it,
        checkpoints it; a connection held open makes the others cheap. The file stays locked
        for other processes meanwhile (they wait, see `Session.connect`). Nothing to do
        elsewhere.
        """
        if self._dialect != "duckdb":
            yield
            return
        with self._session.connect():
            yield

    def remove_abandoned_spools(self) -> None:
        """Remove the spool folders killed loads left beside a DuckDB file (inside `held_open`,
        where no other process can be loading into it)."""
        if self._dialect == "duckdb":
            remove_abandoned_spools(self.engine.url.database)

    def load_allocation(self, path: Path) -> list[AllocationRow]:
        """Replace `trial.allocation` with the allocation file's rows, atomically."""
        rows = read_allocation(path)

        def replace(conn: sa.Connection) -> None:
            table = self._layout.allocation
            conn.execute(sa.delete(table))
            conn.execute(sa.insert(table), [vars(row) for row in rows])

        self._session.run("loading the allocation", replace)
        return rows

    def allocation(self) -> list[AllocationRow]:
        table = self._layout.allocation
        query = sa.select(table).order_by(table.c.la_code)
        rows = self._session.run("reading the allocation", lambda conn: conn.execute(query).all())
        return [
            AllocationRow(
                la_code=r.la_code, la_name=r.la_name, arm=r.arm, randomised_on=r.randomised_on
            )
            for r in rows
        ]
