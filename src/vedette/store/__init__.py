"""Storage of the centre, each behind a small interface so the embedded default can scale out.

Modules (import the one you need; this package imports none of them, so importing it does not
pull in DuckDB, PyArrow or SQLite):

- :mod:`vedette.store.spool` — the durable ingest spool: ``Spool`` protocol, ``SqliteSpool``
  (SQLite WAL, ``synchronous=FULL``, group commit, idempotency keys, high-water back-pressure).
- :mod:`vedette.store.eventstore` — events kept for hunting: ``EventRow``, ``events_table``,
  ``ParquetEventStore`` (Parquet partitioned by unit and day, retention).
- :mod:`vedette.store.hunt` — ``run_hunt``: one read-only SELECT over the caller's units'
  events in a locked-down DuckDB connection.
- :mod:`vedette.store.state` — units, users, tokens, alerts and audit trail (SQLAlchemy 2).
"""
