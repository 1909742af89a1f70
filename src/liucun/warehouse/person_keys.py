"""Person keys: a 64-bit integer for each user or anonymous id, so metrics group integers.

Every metric counts persons, and a person is an id with the anonymous ids linked to it. Joining,
grouping and sorting by the id strings cost 2× (person-days) to 2.5× (funnel as-of joins) more
than by 8-byte integers (bench/analytics.py), so the store keeps a key beside each id: the
events' and rollup rows' `distinct_key`, the links' `anonymous_key` and `user_key`.

The key is a pure function of the id (BLAKE2b, 8 bytes), computed here, not by the engine: the
same id has the same key on every store and every engine version, with no counter to share
between writers. Two different ids of one app share a key with probability about n² / 2⁶⁵ for
n ids (3 in a million for 10 million ids); they would then count as one person.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc


def id_key(value: str) -> int:
    """The person key (signed 64-bit) of one user or anonymous id."""
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# Ids recur from batch to batch (a user sends many), and a lookup here costs a fourteenth of a
# hash (40 ns against 560 ns): ingest keys every id of every batch (in its worker processes,
# each with its own cache). Emptied when full (about 40 MB) rather than kept in order: a miss
# only costs the hash.
_RECENT_KEYS: dict[str, int] = {}
_RECENT_LIMIT = 200_000


def _keys_of(values: list[str]) -> list[int]:
    recent = _RECENT_KEYS
    keys = [recent.get(v) for v in values]
    missing = [i for i, k in enumerate(keys) if k is None]
    if len(recent) + len(missing) > _RECENT_LIMIT:
        recent.clear()
    for i in missing:
        keys[i] = key = id_key(values[i])
        # a batch of more new ids than the cache holds keeps only its first ones
        if len(recent) < _RECENT_LIMIT:
            recent[values[i]] = key
    return keys  # type: ignore[return-value]  # no None is left


def id_keys(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The person keys of a string column (null where the id is null).

    Each distinct id is looked up once: a batch holds many events of few ids.
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    encoded = pc.dictionary_encode(ids)
    keys = pa.array(_keys_of(encoded.dictionary.to_pylist()), pa.int64())
    return pc.take(keys, encoded.indices)
