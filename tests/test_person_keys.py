"""Person keys: one fixed 64-bit key per id, the same for a column as for one value."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liucun.warehouse import person_keys
from liucun.warehouse.person_keys import id_key, id_keys


def test_a_key_is_the_first_8_bytes_of_blake2b_read_little_endian() -> None:
    # written out from the definition, so a change of hash is a visible change of contract
    digest = hashlib.blake2b(b"u-42", digest_size=8).digest()
    assert id_key("u-42") == int.from_bytes(digest, "little", signed=True)
    assert -(2**63) <= id_key("u-42") < 2**63


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), max_size=40), st.integers(1, 4))
def test_a_column_gets_each_values_key_and_nulls_stay_null(
    values: list[str | None], pieces: int
) -> None:
    cut = len(values) // pieces
    chunks = [values[i : i + cut] for i in range(0, len(values), cut)] if cut else [values]
    column = pa.chunked_array([pa.array(c, pa.string()) for c in chunks], pa.string())
    got = id_keys(column).to_pylist()
    assert got == [None if v is None else id_key(v) for v in values]


def test_distinct_ids_get_distinct_keys() -> None:
    ids = [f"user-{i}" for i in range(100_000)]
    assert len(set(id_keys(pa.array(ids)).to_pylist())) == len(ids)


def test_keys_stay_right_when_the_recent_keys_are_emptied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(person_keys, "_RECENT_LIMIT", 3)
    ids = [f"dev-{i % 5}" for i in range(40)]
    for _ in range(3):
        assert id_keys(pa.array(ids)).to_pylist() == [id_key(v) for v in ids]
    assert len(person_keys._RECENT_KEYS) <= 3
