"""A partition's checkpoint as store records, and an engine restored from them; the same for a
worker's merchant replica.

A checkpoint is what changed since the one before: the users changed, the entries pushed to
and popped from the time indexes, the purchases that began or ended waiting for their label,
the merchants and cards of an engine's own merchant book, the models, and last the meta record
with the input offsets the state reflects. A record whose value is None deletes its key. The
same records go to the local store (:mod:`pipeline.state.store`) and to the changelog topic,
so either one restores the partition (:func:`restore_engine`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, Protocol

import orjson

from pipeline.config import RiskConfig
from pipeline.engine import RiskEngine
from pipeline.merchants import MerchantBook
from pipeline.replica import MerchantReplica
from pipeline.state.codec import (
    CARD_PREFIX,
    CYCLE_PREFIX,
    EXPIRY_PREFIX,
    FORMAT_VERSION,
    LABEL_PREFIX,
    MERCHANT_PREFIX,
    PURCHASE_PREFIX,
    USER_PREFIX,
    WAITING_PREFIX,
    check_version,
    cycle_key,
    decode_card,
    decode_cycle_key,
    decode_expiry_key,
    decode_merchant,
    decode_pending,
    decode_pending_key,
    decode_purchase_key,
    decode_user,
    decode_waiting,
    encode_card,
    encode_merchant,
    encode_pending,
    encode_user,
    encode_waiting,
    expiry_key,
    pending_key,
    purchase_key,
    user_key,
    waiting_key,
)
from pipeline.state.models import read_anomaly, read_logistic, write_anomaly, write_logistic
from pipeline.state.tracking import TimeIndex, UserCache
from pipeline.state.user import UserState

__all__ = ["META_KEY", "REPLICA_META_KEY", "Record", "StateReader", "StoredUsers",
           "checkpoint_records", "checkpointed", "read_meta", "replica_records",
           "restore_engine", "restore_replica", "stored_users", "take_checkpoint",
           "taken_user_records"]

#: A key and its new value (None: the key is deleted).
Record = tuple[bytes, bytes | None]

META_KEY = b"mmeta"
_ANOMALY_KEY = b"manomaly"
_CLASSIFIER_KEY = b"mclassifier"
_DEFAULT_MODEL_KEY = b"mdefault-model"
REPLICA_META_KEY = b"mreplica"


class StateReader(Protocol):
    """What a restore reads: one key, or every key with a prefix in key order."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class StoredUsers:
    """The users of a store, for a :class:`~pipeline.state.tracking.UserCache`."""

    def __init__(self, reader: StateReader) -> None:
        self.reader = reader

    def load_user(self, user_id: str) -> UserState | None:
        value = self.reader.get(user_key(user_id))
        return None if value is None else decode_user(value)


def checkpoint_records(engine: RiskEngine, offsets: dict[str, int]) -> list[Record]:
    """Everything ``engine`` changed since its last checkpoint, with the input ``offsets``
    its state now reflects; the meta record comes last."""
    records: list[Record] = [(user_key(user_id), encode_user(user))
                             for user_id, user in engine.users.changes()]
    return records + _other_records(engine, offsets)


def take_checkpoint(engine: RiskEngine, offsets: dict[str, int]) -> list[Record]:
    """Start a checkpoint whose users are encoded lazily (the bulk of its work): everything
    else ``engine`` changed is encoded now and returned (the meta record, with ``offsets``,
    last), and the users changed are taken as they are now (``UserCache.take_changes``).
    Once ``engine.users.encode_taken()`` is true, :func:`taken_user_records` gives them."""
    records = _other_records(engine, offsets)
    engine.users.take_changes(encode_user)
    _others_checkpointed(engine)
    return records


def taken_user_records(engine: RiskEngine) -> list[Record]:
    """The records of the users :func:`take_checkpoint` took, once all are encoded."""
    return [(user_key(user_id), value) for user_id, value in engine.users.taken()]


def _other_records(engine: RiskEngine, offsets: dict[str, int]) -> list[Record]:
    """What changed besides the users: time indexes, pending labels, the merchant book, the
    models, and the meta record last."""
    records: list[Record] = []
    for index, key_of in ((engine.expiries, expiry_key), (engine.cycle_maturities, cycle_key)):
        records.extend((key_of(entry), b"") for entry in index.pushed)  # type: ignore[operator]
        records.extend((key_of(entry), None) for entry in index.popped)  # type: ignore[operator]
    pending = engine.pending_labels
    records.extend((pending_key(sequence), encode_pending(due, id_hash, inputs))
                   for sequence, (due, id_hash, inputs) in pending.added.items())
    records.extend((pending_key(sequence), None) for sequence in pending.removed)
    if engine.feeds_merchants:
        records += _book_records(engine.merchants)
    scorer = engine.scorer
    records += [
        (_ANOMALY_KEY, orjson.dumps(write_anomaly(scorer.anomaly))),
        (_CLASSIFIER_KEY, orjson.dumps(write_logistic(scorer.classifier))),
        (_DEFAULT_MODEL_KEY, orjson.dumps(write_logistic(engine.default_model))),
        (META_KEY, orjson.dumps({
            "format": FORMAT_VERSION,
            "offsets": offsets,
            "watermark": engine.watermark,
            "labels_sequence": pending.sequence,
        })),
    ]
    return records


def _book_records(book: MerchantBook) -> list[Record]:
    """The merchants and cards of a tracked merchant book changed since its last checkpoint."""
    records: list[Record] = []
    merchants, cards = book.merchants, book.cards.cards
    for merchant_id in book.changed_merchants or ():
        activity = merchants.get(merchant_id)
        records.append((MERCHANT_PREFIX + merchant_id.encode(),
                        None if activity is None else encode_merchant(activity)))
    for card in book.changed_cards or ():
        habits = cards.get(card)
        records.append((CARD_PREFIX + card.encode(),
                        None if habits is None else encode_card(habits)))
    return records


def _read_book(book: MerchantBook, reader: StateReader) -> None:
    for key, value in reader.scan(MERCHANT_PREFIX):
        book.merchants[key[1:].decode()] = decode_merchant(value)
    for key, value in reader.scan(CARD_PREFIX):
        book.cards.cards[key[1:].decode()] = decode_card(value)


def checkpointed(engine: RiskEngine) -> None:
    """The records of :func:`checkpoint_records` are taken: count changes afresh. (Once they
    are in the store, ``engine.users.evict()`` lets users beyond the cache's bound go.)"""
    _others_checkpointed(engine)
    engine.users.checkpointed()


def _others_checkpointed(engine: RiskEngine) -> None:
    engine.expiries.checkpointed()
    engine.cycle_maturities.checkpointed()
    engine.pending_labels.checkpointed()
    if engine.feeds_merchants:
        engine.merchants.checkpointed()


def read_meta(reader: StateReader, where: str) -> dict[str, Any] | None:
    """The meta record of a stored partition (None: nothing stored), its format checked."""
    value = reader.get(META_KEY)
    if value is None:
        return None
    meta = orjson.loads(value)
    check_version(meta.get("format"), where)
    return meta


def restore_engine(reader: StateReader, config: RiskConfig, *, cache_capacity: int | None,
                   own_merchants: bool, where: str) -> tuple[RiskEngine, dict[str, int]]:
    """The engine a store holds and the input offsets it reflects (none: nothing stored, a
    fresh engine whose users will be kept in the store).

    Users stay in the store until an event needs them; the time indexes, the purchases
    waiting for their label and the models are read now, and with ``own_merchants`` the
    merchant book too (an engine that will query a merchant replica needs none).
    """
    meta = read_meta(reader, where)
    engine = RiskEngine(config)
    engine.users = UserCache(StoredUsers(reader), cache_capacity)
    if meta is None:
        return engine, {}
    engine.watermark = meta["watermark"]
    read_anomaly(engine.scorer.anomaly, _document(reader, _ANOMALY_KEY))
    read_logistic(engine.scorer.classifier, _document(reader, _CLASSIFIER_KEY))
    read_logistic(engine.default_model, _document(reader, _DEFAULT_MODEL_KEY))
    engine.expiries = TimeIndex(decode_expiry_key(key) for key, _ in reader.scan(EXPIRY_PREFIX))
    engine.cycle_maturities = TimeIndex(
        decode_cycle_key(key) for key, _ in reader.scan(CYCLE_PREFIX))
    engine.pending_labels.restore(
        ((decode_pending_key(key), *decode_pending(value))
         for key, value in reader.scan(LABEL_PREFIX)),
        meta["labels_sequence"],
    )
    if own_merchants:
        _read_book(engine.merchants, reader)
    return engine, meta["offsets"]


def _document(reader: StateReader, key: bytes) -> dict[str, Any]:
    value = reader.get(key)
    if value is None:
        raise ValueError(f"the stored partition has no {key[1:].decode()} record")
    return orjson.loads(value)


def stored_users(reader: StateReader) -> Iterator[tuple[str, UserState]]:
    """Every user a store holds, in key order."""
    for key, value in reader.scan(USER_PREFIX):
        yield key[1:].decode(), decode_user(value)


def replica_records(replica: MerchantReplica, positions: dict[tuple[str, int], int]
                    ) -> list[Record]:
    """What a merchant replica changed since its last checkpoint, with the input
    ``positions`` it has read up to (its meta record last). After :meth:`MerchantReplica.clear`
    the store is to be emptied first (``replica.cleared``)."""
    records = _book_records(replica.book)
    for id_hash, (merchant_id, event_time) in replica.changed_purchases.items():
        held = replica.purchase(id_hash) == (merchant_id, event_time)
        records.append((purchase_key(event_time, id_hash),
                        merchant_id.encode() if held else None))
    waiting = replica.waiting_labels()
    for id_hash in replica.changed_waiting:
        label_time = waiting.get(id_hash)
        records.append((waiting_key(id_hash),
                        None if label_time is None else encode_waiting(label_time)))
    records.append((REPLICA_META_KEY, orjson.dumps({
        "format": FORMAT_VERSION,
        "partitions": replica.partitions,
        "config": asdict(replica.config),
        "clocks": [[source, partition, clock]
                   for (source, partition), clock in replica.clocks.items()],
        "evicted_through": replica.evicted_through,
        "positions": [[topic, partition, offset]
                      for (topic, partition), offset in positions.items()],
    })))
    return records


def restore_replica(reader: StateReader, config: RiskConfig, partitions: int, where: str
                    ) -> tuple[MerchantReplica, dict[tuple[str, int], int]] | None:
    """The merchant replica a store holds, with the input positions it had read up to; None
    if there is none, or one kept with other settings or another partition count."""
    value = reader.get(REPLICA_META_KEY)
    if value is None:
        return None
    meta = orjson.loads(value)
    check_version(meta.get("format"), where)
    if meta["partitions"] != partitions or RiskConfig(**meta["config"]) != config:
        return None
    replica = MerchantReplica(config, partitions)
    _read_book(replica.book, reader)
    purchases = [(*decode_purchase_key(key), value.decode())
                 for key, value in reader.scan(PURCHASE_PREFIX)]
    waiting = sorted(decode_waiting(key, value) for key, value in reader.scan(WAITING_PREFIX))
    replica.restore(purchases, waiting,
                    {(source, partition): clock for source, partition, clock in meta["clocks"]},
                    meta["evicted_through"])
    positions = {(topic, partition): offset for topic, partition, offset in meta["positions"]}
    return replica, positions
