"""Decoding: every bad message becomes a dead letter with a reason, and keeps its bytes."""

import base64

from homeloop.events import DeadLetterEvent, ListingEvent
from streams.decoding import Decoded, Rejected, dead_letter, decode
from tests.factories import listing_event

GOOD = listing_event(floor=3, build_year=2001).to_bytes()


def test_good_message_decodes() -> None:
    result = decode(GOOD, ListingEvent)
    assert isinstance(result, Decoded)
    assert result.event.listing_id == "L1"


def test_reasons() -> None:
    not_json = decode(b"not json", ListingEvent)
    assert isinstance(not_json, Rejected) and not_json.reason == "not_json"
    assert decode(None, ListingEvent) == Rejected("empty", "message has no value")
    assert decode(b"", ListingEvent) == Rejected("empty", "message has no value")
    missing = decode(b'{"listing_id": "L1"}', ListingEvent)
    assert isinstance(missing, Rejected) and missing.reason == "invalid"
    assert "complex_id" in missing.detail and "region_code" in missing.detail
    wrong = decode(GOOD.replace(b'"41135"', b'"4113"'), ListingEvent)
    assert isinstance(wrong, Rejected) and "region_code" in wrong.detail


def test_dead_letter_keeps_bytes_and_origin() -> None:
    raw = b"\xff\xfe garbage"
    letter = dead_letter(
        rejected=Rejected("not_json", "bad"),
        raw=raw,
        key=b"k1",
        topic="t.listings",
        partition=2,
        offset=41,
        consumer="listing-features",
    )
    again = DeadLetterEvent.from_bytes(letter.to_bytes())
    assert base64.b64decode(again.raw) == raw
    assert (again.source_topic, again.partition, again.offset) == ("t.listings", 2, 41)
    assert again.error == "not_json: bad"
    assert again.key == "k1"


def test_a_batch_decodes_fast_and_a_bad_message_only_costs_itself() -> None:
    from homeloop.events import ListingEvent
    from streams.decoding import Decoded, Rejected, decode_many
    from tests.factories import listing_event

    good = [listing_event(f"L{i}").to_bytes() for i in range(3)]
    assert all(isinstance(d, Decoded) for d in decode_many(good, ListingEvent))
    # Two objects in one message would shift a joined array: it is refused alone.
    smuggled = good[0] + b"," + good[1]
    mixed = decode_many([good[0], smuggled, b"", good[2]], ListingEvent)
    assert [type(d).__name__ for d in mixed] == ["Decoded", "Rejected", "Rejected", "Decoded"]
    assert isinstance(mixed[2], Rejected) and mixed[2].reason == "empty"
    assert isinstance(mixed[3], Decoded) and mixed[3].event.listing_id == "L2"
