"""Moving an app's events (and its users' creation times) from one event store to another."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from liucun.events.columnar import uuid_bytes
from liucun.warehouse.dedup import event_hashes
from liucun.warehouse.person_keys import id_keys
from liucun.warehouse.schema import STORED_EVENT_ARROW_SCHEMA
from liucun.warehouse.store import EventStore

BATCH_ROWS = 100_000


class MigrationCountError(RuntimeError):
    """The target holds another number of the app's events than the source after a copy."""


@dataclass(frozen=True)
class MigrationReport:
    app_id: str
    source_events: int
    new_in_target: int  # events the target did not hold before (a rerun copies only these)
    target_events: int
    users: int


def stored_table(exported: pa.Table) -> pa.Table:
    """Exported events (`EventStore.export_batches`) in the form a store appends: with their
    dedup hash and person key, which exports leave out."""
    apps = pc.unique(exported.column("app_id")).to_pylist()
    if len(apps) > 1:
        raise ValueError(f"an export batch of one app holds several: {apps}")
    app_id = apps[0] if apps else ""
    ids = exported.column("event_id").cast(pa.string())
    derived = {
        "event_id": ids,
        "event_hash": pa.array(event_hashes(app_id, uuid_bytes(ids)), pa.int64()),
        "distinct_key": id_keys(exported.column("distinct_id")),
    }
    columns = [
        derived[f.name] if f.name in derived else exported.column(f.name).cast(f.type)
        for f in STORED_EVENT_ARROW_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=STORED_EVENT_ARROW_SCHEMA)


def _batches_of(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """`tables` regrouped into tables of at least `rows` rows (the last may have fewer): a
    store may hand out smaller batches than asked for, and each append has a fixed cost."""
    pending: list[pa.Table] = []
    size = 0
    for table in tables:
        pending.append(table)
        size += table.num_rows
        if size >= rows:
            yield pa.concat_tables(pending)
            pending, size = [], 0
    if size:
        yield pa.concat_tables(pending)


def _users(source: EventStore, app_id: str) -> pa.Table:
    d = source.dialect
    return source.query(
        f"SELECT user_id, min(created_at) AS created_at FROM user_created "
        f"WHERE app_id = {d.param('app')} GROUP BY user_id",
        {"app": app_id},
    )


def migrate_events(
    source: EventStore,
    target: EventStore,
    app_id: str,
    timezone: str,
    on_batch: Callable[[int], None] = lambda rows: None,
) -> MigrationReport:
    """Copy every event of `app_id` from `source` to `target`, then check the counts.

    Safe to run again after an interruption: the target stores each event once, so a rerun
    copies what is missing. `on_batch(rows)` is called after each batch is stored. Raises
    `MigrationCountError` if the target then holds another number of the app's events.
    """
    users = _users(source, app_id)
    target.add_users(app_id, users)
    source_events = source.count(app_id)
    new = 0
    for batch in _batches_of(source.export_batches(app_id), BATCH_ROWS):
        new += int(target.append(stored_table(batch), {app_id: timezone}).sum())
        on_batch(batch.num_rows)
    target_events = target.count(app_id)
    if target_events != source_events:
        raise MigrationCountError(
            f"the target holds {target_events:,} events of {app_id} and the source "
            f"{source_events:,}: did something else write to either during the copy? "
            "Run the migration again once writes have stopped"
        )
    return MigrationReport(app_id, source_events, new, target_events, users.num_rows)
