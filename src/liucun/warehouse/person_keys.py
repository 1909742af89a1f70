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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def id_key(value: str) -> int:
    """The person key (signed 64-bit) of one user or anonymous id."""
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def id_keys(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The person keys of a string column (null where the id is null).

    Each distinct id is hashed once: a batch holds many events of few ids.
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    encoded = pc.dictionary_encode(ids)
    values = encoded.dictionary.to_pylist()
    keys = np.fromiter((id_key(v) for v in values), dtype=np.int64, count=len(values))
    return pc.take(pa.array(keys, pa.int64()), encoded.indices)
