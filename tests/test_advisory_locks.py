"""The PostgreSQL advisory-lock id of a counted key: a bigint, the same for the same key, and a
different one for keys that differ in their first 64 bits (the pseudonyms are hex digests)."""

from __future__ import annotations

import hashlib

from ivr.counters import _advisory_id

BIGINT = range(-(2**63), 2**63)


def test_every_key_gets_a_bigint_the_same_each_time() -> None:
    keys = ["0" * 64, "f" * 64, "8" + "0" * 63, "7" + "f" * 63, "ab", ""]
    for key in keys:
        assert _advisory_id(key) in BIGINT
        assert _advisory_id(key) == _advisory_id(key)


def test_keys_differing_in_their_first_64_bits_get_different_ids() -> None:
    keys = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(2000)]
    keys += ["f" * 64, "0" * 64, "8" + "0" * 63, "0" * 15 + "1" + "0" * 48]
    assert len({_advisory_id(key) for key in keys}) == len(keys)


def test_the_id_is_read_from_the_start_of_the_key() -> None:
    """Fixed, so that every process of every version of the line takes the same lock for a key."""
    assert _advisory_id("0" * 16 + "f" * 48) == 0
    assert _advisory_id("00000000000000ff") == 255
    assert _advisory_id("ff" + "0" * 62) < 0  # the top bit set: a negative bigint
    assert _advisory_id("1") == 2**60  # a short key is padded on the right
