"""The state's layout on disk and in the changelog: explicit, versioned, little-endian.

A partition's state is a set of records, each under a key whose first byte says what it is:

========  ==============================================  ====================================
prefix    key                                             value
========  ==============================================  ====================================
``u``     ``u`` + user id (UTF-8)                         a user's record (:func:`encode_user`)
``m``     ``m`` + name (``meta``, ``anomaly``, ...)       a JSON document (:mod:`.models`)
``l``     ``l`` + sequence number (u64, big-endian)       a purchase waiting for its label
``e``     ``e`` + time, user id, adjustment id            nothing: a cut's expiry
``c``     ``c`` + time, user id, cycle number             nothing: a billing cycle's maturity
``k``     ``k`` + merchant id                             a merchant's purchases (own book)
``h``     ``h`` + card (user id)                          a card's habits (own book)
``r``     ``r`` + time, purchase id hash                  its merchant (replica)
``w``     ``w`` + purchase id hash                        a fraud label's time (replica)
========  ==============================================  ====================================

``k`` and ``h`` are kept by an engine with its own merchant book (no merchant replica) and by a
worker's merchant replica, whose store also holds ``r``, ``w`` and its own meta record.

Every user record starts with :data:`FORMAT_VERSION`, so a record is read by the release
that wrote it and the next, or refused by name (:class:`StateFormatError`). Keys of time
indexes put the time first, big-endian and offset to unsigned, so a store lists them in time
order. Nothing here pickles a live object: a record written by one release means the same to
the next.
"""

from __future__ import annotations

import struct
import sys
from array import array

from pipeline.credit import CreditHistory, PendingCycle
from pipeline.exceptions import StateFormatError
from pipeline.merchants import MerchantActivity
from pipeline.state.user import Hold, UserState
from pipeline.windows import PurchaseWindows

__all__ = [
    "CARD_PREFIX",
    "CYCLE_PREFIX",
    "EXPIRY_PREFIX",
    "FORMAT_VERSION",
    "LABEL_PREFIX",
    "MERCHANT_PREFIX",
    "META_PREFIX",
    "PURCHASE_PREFIX",
    "USER_PREFIX",
    "WAITING_PREFIX",
    "StateFormatError",
    "check_version",
    "cycle_key",
    "decode_card",
    "decode_cycle_key",
    "decode_expiry_key",
    "decode_merchant",
    "decode_pending",
    "decode_pending_key",
    "decode_purchase_key",
    "decode_user",
    "decode_waiting",
    "encode_card",
    "encode_merchant",
    "encode_pending",
    "encode_user",
    "encode_waiting",
    "expiry_key",
    "pending_key",
    "purchase_key",
    "user_key",
    "waiting_key",
]

#: The layout's version. The pickle snapshots of earlier releases were versions 1 to 6.
FORMAT_VERSION = 7

USER_PREFIX = b"u"
META_PREFIX = b"m"
LABEL_PREFIX = b"l"
EXPIRY_PREFIX = b"e"
CYCLE_PREFIX = b"c"
MERCHANT_PREFIX = b"k"
CARD_PREFIX = b"h"
PURCHASE_PREFIX = b"r"
WAITING_PREFIX = b"w"

_LITTLE = sys.byteorder == "little"
#: Event times as unsigned big-endian keys sort in time order, negatives first.
_TIME_OFFSET = 2**63

_VERSION = struct.Struct("<H")
#: version, flags, limit, balance, baseline count, mean, variance, on-time and late
#: repayments, last alert time, last raise time.
_USER_HEAD = struct.Struct("<HBqqqddqqqq")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HOLD = struct.Struct("<qqB")
#: statements, balance, limit, repaid this cycle, repaid last cycle, cycles, paid share last,
#: paid share sum, utilisation, previous, sum, past due, previous, sum, in use, has risk, risk.
_CREDIT = struct.Struct("<qqqqqqdddddqqqqBd")
_CYCLE = struct.Struct("<qqBH")
_PENDING = struct.Struct("<qq")
_MERCHANT_HEAD = struct.Struct("<HIIq")
_MARK = struct.Struct("<qqqB")
_CARD = struct.Struct("<Hdqq")
_TIME_KEY = struct.Struct(">Q")
_PURCHASE_KEY = struct.Struct(">Qq")
_HASH_KEY = struct.Struct(">q")
_TIME_VALUE = struct.Struct("<q")
_SEQUENCE_KEY = struct.Struct(">Q")

_FRAUD_CONFIRMED, _DEFAULTED, _ALERTED, _RAISED, _HOLD_FLAG, _CREDIT_FLAG = (
    1 << bit for bit in range(6)
)


def check_version(version: object, where: str) -> None:
    """Refuse state written in another layout, naming both versions and where it was found."""
    if version != FORMAT_VERSION:
        raise StateFormatError(
            f"{where} holds riskstream state of format version {version}; this release reads "
            f"version {FORMAT_VERSION}. Restore it with the release that wrote it, or remove it "
            "and let the partition restore from its changelog"
        )


# -- keys ----------------------------------------------------------------------------------
def user_key(user_id: str) -> bytes:
    return USER_PREFIX + user_id.encode()


def _time(value: int) -> bytes:
    return _TIME_KEY.pack(value + _TIME_OFFSET)


def _text(value: str) -> bytes:
    data = value.encode()
    return _U16.pack(len(data)) + data


def _read_text(data: bytes | memoryview, at: int) -> tuple[str, int]:
    (length,) = _U16.unpack_from(data, at)
    at += 2
    return bytes(data[at:at + length]).decode(), at + length


def expiry_key(entry: tuple[int, str, str]) -> bytes:
    """Key of a cut's expiry ``(time, user id, adjustment id)``."""
    expires_at, user_id, adjustment_id = entry
    return EXPIRY_PREFIX + _time(expires_at) + _text(user_id) + adjustment_id.encode()


def decode_expiry_key(key: bytes) -> tuple[int, str, str]:
    (time,) = _TIME_KEY.unpack_from(key, 1)
    user_id, at = _read_text(key, 9)
    return time - _TIME_OFFSET, user_id, key[at:].decode()


def cycle_key(entry: tuple[int, str, int]) -> bytes:
    """Key of a billing cycle's maturity ``(time, user id, cycle number)``."""
    matures_at, user_id, number = entry
    return CYCLE_PREFIX + _time(matures_at) + _text(user_id) + _U32.pack(number)


def decode_cycle_key(key: bytes) -> tuple[int, str, int]:
    (time,) = _TIME_KEY.unpack_from(key, 1)
    user_id, at = _read_text(key, 9)
    (number,) = _U32.unpack_from(key, at)
    return time - _TIME_OFFSET, user_id, number


def pending_key(sequence: int) -> bytes:
    """Key of the ``sequence``-th purchase to wait for its label (keys list in that order)."""
    return LABEL_PREFIX + _SEQUENCE_KEY.pack(sequence)


def decode_pending_key(key: bytes) -> int:
    return _SEQUENCE_KEY.unpack_from(key, 1)[0]


# -- values --------------------------------------------------------------------------------
def _raw(values: array) -> bytes:
    """An array's items, little-endian."""
    if _LITTLE:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def _read_array(typecode: str, data: bytes | memoryview, at: int, count: int
                ) -> tuple[array, int]:
    values = array(typecode)
    end = at + count * values.itemsize
    values.frombytes(data[at:end])
    if not _LITTLE:
        values.byteswap()
    return values, end


def encode_pending(due: int, id_hash: int, inputs: array) -> bytes:
    """A purchase waiting for its label: when it is learned as legitimate, its id hash, and
    the classifier's inputs (float32)."""
    return _PENDING.pack(due, id_hash) + _raw(inputs)


def decode_pending(value: bytes) -> tuple[int, int, array]:
    due, id_hash = _PENDING.unpack_from(value)
    inputs, _ = _read_array("f", value, _PENDING.size, (len(value) - _PENDING.size) // 4)
    return due, id_hash, inputs


def encode_user(user: UserState) -> bytes:
    """One user's record: every field of :class:`UserState`, its windows and credit line."""
    flags = ((_FRAUD_CONFIRMED if user.fraud_confirmed else 0)
             | (_DEFAULTED if user.defaulted else 0)
             | (_ALERTED if user.last_alert_time is not None else 0)
             | (_RAISED if user.last_raise_time is not None else 0)
             | (_HOLD_FLAG if user.hold is not None else 0)
             | (_CREDIT_FLAG if user.credit is not None else 0))
    parts = [_USER_HEAD.pack(
        FORMAT_VERSION, flags, user.limit_minor, user.balance_minor, user.baseline_count,
        user.baseline_mean, user.baseline_var, user.on_time_repayments, user.late_repayments,
        user.last_alert_time or 0, user.last_raise_time or 0,
    ), _U8.pack(len(user.other_ids)), _raw(user.other_ids)]
    _encode_windows(user.windows, parts)
    hold = user.hold
    if hold is not None:
        parts += (_text(hold.adjustment_id), _text(hold.alert_id), _text(hold.kind),
                  _HOLD.pack(hold.amount_minor, hold.expires_at, hold.confirmed))
    if user.credit is not None:
        _encode_credit(user.credit, parts)
    return b"".join(parts)


def _encode_windows(windows: PurchaseWindows, parts: list[bytes]) -> None:
    """Purchases as three int64 columns and an index into the user's distinct merchants."""
    merchants = windows.merchants
    distinct = list(dict.fromkeys(merchants))
    position = {merchant: index for index, merchant in enumerate(distinct)}
    parts.append(_U32.pack(len(windows.times)))
    parts.append(_U32.pack(len(distinct)))
    parts.extend(_text(merchant) for merchant in distinct)
    parts += (_raw(windows.times), _raw(windows.amounts), _raw(windows.id_hashes))
    parts.append(_raw(array(_index_type(len(distinct)), map(position.__getitem__, merchants))))


def _index_type(distinct: int) -> str:
    return "H" if distinct <= 0xFFFF else "I"


def _encode_credit(credit: CreditHistory, parts: list[bytes]) -> None:
    risk = credit.risk
    parts.append(_CREDIT.pack(
        credit.statements, credit.balance_minor, credit.limit_minor, credit.paid_cycle_minor,
        credit.paid_last_minor, credit.cycles, credit.paid_share_last, credit.paid_share_sum,
        credit.utilisation, credit.utilisation_previous, credit.utilisation_sum,
        credit.past_due, credit.past_due_previous, credit.past_due_sum, credit.in_use,
        risk is not None, risk if risk is not None else 0.0,
    ))
    parts.append(_U8.pack(len(credit.pending)))
    for cycle in credit.pending:
        parts.append(_CYCLE.pack(cycle.number, cycle.matures_at, cycle.defaulted,
                                 len(cycle.inputs)))
        parts.append(_raw(cycle.inputs))


def decode_user(value: bytes) -> UserState:
    """The user a record holds; raises :class:`StateFormatError` for another layout."""
    (version,) = _VERSION.unpack_from(value)
    check_version(version, "a user record")
    data = memoryview(value)
    (_, flags, limit, balance, baseline_count, baseline_mean, baseline_var, on_time, late,
     last_alert, last_raise) = _USER_HEAD.unpack_from(data)
    user = UserState(limit)
    user.balance_minor = balance
    user.baseline_count, user.baseline_mean, user.baseline_var = (
        baseline_count, baseline_mean, baseline_var)
    user.on_time_repayments, user.late_repayments = on_time, late
    user.last_alert_time = last_alert if flags & _ALERTED else None
    user.last_raise_time = last_raise if flags & _RAISED else None
    user.fraud_confirmed = bool(flags & _FRAUD_CONFIRMED)
    user.defaulted = bool(flags & _DEFAULTED)
    at = _USER_HEAD.size
    (count,) = _U8.unpack_from(data, at)
    user.other_ids, at = _read_array("q", data, at + 1, count)
    at = _decode_windows(user.windows, data, at)
    if flags & _HOLD_FLAG:
        adjustment_id, at = _read_text(data, at)
        alert_id, at = _read_text(data, at)
        kind, at = _read_text(data, at)
        amount, expires_at, confirmed = _HOLD.unpack_from(data, at)
        at += _HOLD.size
        user.hold = Hold(adjustment_id, alert_id, amount, expires_at, bool(confirmed), kind)
    if flags & _CREDIT_FLAG:
        user.credit, at = _decode_credit(data, at)
    if at != len(data):
        raise StateFormatError(f"a user record has {len(data) - at} bytes past its end")
    return user


def _decode_windows(windows: PurchaseWindows, data: memoryview, at: int) -> int:
    count, distinct_count = _U32.unpack_from(data, at)[0], _U32.unpack_from(data, at + 4)[0]
    at += 8
    distinct = []
    for _ in range(distinct_count):
        merchant, at = _read_text(data, at)
        distinct.append(merchant)
    windows.times, at = _read_array("q", data, at, count)
    windows.amounts, at = _read_array("q", data, at, count)
    windows.id_hashes, at = _read_array("q", data, at, count)
    indexes, at = _read_array(_index_type(distinct_count), data, at, count)
    windows.merchants = list(map(distinct.__getitem__, indexes))
    return at


def _decode_credit(data: memoryview, at: int) -> tuple[CreditHistory, int]:
    credit = CreditHistory()
    (credit.statements, credit.balance_minor, credit.limit_minor, credit.paid_cycle_minor,
     credit.paid_last_minor, credit.cycles, credit.paid_share_last, credit.paid_share_sum,
     credit.utilisation, credit.utilisation_previous, credit.utilisation_sum,
     credit.past_due, credit.past_due_previous, credit.past_due_sum, credit.in_use,
     has_risk, risk) = _CREDIT.unpack_from(data, at)
    credit.risk = risk if has_risk else None
    at += _CREDIT.size
    (cycles,) = _U8.unpack_from(data, at)
    at += 1
    for _ in range(cycles):
        number, matures_at, defaulted, length = _CYCLE.unpack_from(data, at)
        inputs, at = _read_array("f", data, at + _CYCLE.size, length)
        cycle = PendingCycle(number, matures_at, inputs)
        cycle.defaulted = bool(defaulted)
        credit.pending.append(cycle)
    return credit, at


def encode_merchant(activity: MerchantActivity) -> bytes:
    """A merchant's purchases (times, id hashes, states) and its fraud marks."""
    parts = [_MERCHANT_HEAD.pack(FORMAT_VERSION, len(activity.times), len(activity.known_at),
                                 activity.last_known),
             _raw(activity.times), _raw(activity.id_hashes), bytes(activity.states)]
    parts.extend(_MARK.pack(id_hash, event_time, known_at, ordinary)
                 for id_hash, (event_time, known_at, ordinary) in activity.known_at.items())
    return b"".join(parts)


def decode_merchant(value: bytes) -> MerchantActivity:
    version, count, marks, last_known = _MERCHANT_HEAD.unpack_from(value)
    check_version(version, "a merchant record")
    activity = MerchantActivity()
    activity.last_known = last_known
    activity.times, at = _read_array("q", value, _MERCHANT_HEAD.size, count)
    activity.id_hashes, at = _read_array("q", value, at, count)
    activity.states = bytearray(value[at:at + count])
    at += count
    for _ in range(marks):
        id_hash, event_time, known_at, ordinary = _MARK.unpack_from(value, at)
        activity.known_at[id_hash] = (event_time, known_at, bool(ordinary))
        at += _MARK.size
    return activity


def encode_card(habits: tuple[float, int, int]) -> bytes:
    """A card's habits: mean log amount, purchases, latest purchase time."""
    return _CARD.pack(FORMAT_VERSION, *habits)


def decode_card(value: bytes) -> tuple[float, int, int]:
    version, mean, count, latest = _CARD.unpack(value)
    check_version(version, "a card record")
    return mean, count, latest


def purchase_key(event_time: int, id_hash: int) -> bytes:
    """Key of a purchase a merchant replica holds (keys list in time order)."""
    return PURCHASE_PREFIX + _PURCHASE_KEY.pack(event_time + _TIME_OFFSET, id_hash)


def decode_purchase_key(key: bytes) -> tuple[int, int]:
    time, id_hash = _PURCHASE_KEY.unpack_from(key, 1)
    return time - _TIME_OFFSET, id_hash


def waiting_key(id_hash: int) -> bytes:
    """Key of a fraud label a replica read before its purchase, by the purchase's id hash."""
    return WAITING_PREFIX + _HASH_KEY.pack(id_hash)


def encode_waiting(label_time: int) -> bytes:
    return _TIME_VALUE.pack(label_time)


def decode_waiting(key: bytes, value: bytes) -> tuple[int, int]:
    """(label time, purchase id hash) of a waiting label's record."""
    return _TIME_VALUE.unpack(value)[0], _HASH_KEY.unpack_from(key, 1)[0]
