"""What a partition's state changed since its last checkpoint, so a checkpoint writes only that.

:class:`UserCache` holds the users an engine works on. Backed by a store, it keeps only the
recently changed ones in memory (a bound, :attr:`UserCache.capacity`) and reads the others
back on demand; without one it is a plain dictionary of every user. :class:`TimeIndex` is an
event-time queue (a min-heap) that remembers which entries were pushed and popped.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from pipeline.state.user import UserState

__all__ = ["TimeIndex", "UserCache", "UserSource"]

Entry = TypeVar("Entry", bound=tuple)


class UserSource(Protocol):
    """Where users that are not in memory are read from (a partition's store)."""

    def load_user(self, user_id: str) -> UserState | None: ...


class UserCache:
    """The users of one partition, by id.

    Every user handed out for a change (:meth:`touch`, ``cache[user_id]``) is remembered as
    changed until :meth:`checkpointed`. Once a checkpoint is in the store, the least recently
    changed users beyond ``capacity`` leave memory (:meth:`evict`); the store gives them back
    when they are next needed. Users changed since the last checkpoint always stay.

    >>> cache = UserCache(capacity=1)
    >>> cache.touch("u1", lambda: UserState(100)).balance_minor = 7
    >>> _ = cache.touch("u2", lambda: UserState(100))
    >>> sorted(cache.changed), len(cache)
    (['u1', 'u2'], 2)
    >>> cache.checkpointed(); cache.evict()  # no store: nobody can leave memory
    0

    A checkpoint can also take the changes lazily, so that encoding them need not stall the
    stream: :meth:`take_changes` freezes the set of changed users, which are then encoded a
    few at a time (:meth:`encode_taken`) -- and any of them about to change again is encoded
    first, so the checkpoint holds every user as it was when the changes were taken.

    >>> cache.touch("u1", lambda: UserState(100)).balance_minor = 8
    >>> cache.take_changes(lambda user: str(user.balance_minor).encode())
    >>> cache.touch("u1", lambda: UserState(100)).balance_minor = 9  # encoded as 8 first
    >>> cache.encode_taken(), cache.taken(), sorted(cache.changed)
    (True, [('u1', b'8')], ['u1'])
    """

    def __init__(self, source: UserSource | None = None, capacity: int | None = None) -> None:
        self.source = source
        self.capacity = capacity
        #: In memory, least recently changed first (as of the last checkpoint).
        self._users: dict[str, UserState] = {}
        self.changed: set[str] = set()
        #: Users a checkpoint has taken and not encoded yet, then the encoded ones.
        self._taken: dict[str, None] = {}
        self._encoded: list[tuple[str, bytes]] = []
        self._encode: Callable[[UserState], bytes] | None = None

    def __len__(self) -> int:
        """Users in memory."""
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def __iter__(self) -> Iterator[str]:
        return iter(self._users)

    def items(self) -> Iterable[tuple[str, UserState]]:
        """The users in memory (with a store, not every user of the partition)."""
        return self._users.items()

    def get(self, user_id: str) -> UserState | None:
        """The user, read from the store if not in memory; None if unknown. Not a change."""
        user = self._users.get(user_id)
        if user is None and self.source is not None:
            user = self.source.load_user(user_id)
            if user is not None:
                self._users[user_id] = user
        return user

    def __getitem__(self, user_id: str) -> UserState:
        """A known user, to change."""
        user = self.get(user_id)
        if user is None:
            raise KeyError(user_id)
        if self._taken and user_id in self._taken:
            self._encode_one(user_id)
        self.changed.add(user_id)
        return user

    def touch(self, user_id: str, create: Callable[[], UserState]) -> UserState:
        """The user, created if unknown, to change."""
        user = self._users.get(user_id)
        if user is None:
            user = self.get(user_id)
            if user is None:
                user = self._users[user_id] = create()
        if self._taken and user_id in self._taken:
            self._encode_one(user_id)
        self.changed.add(user_id)
        return user

    def changes(self) -> Iterator[tuple[str, UserState]]:
        """The users changed since the last checkpoint."""
        users = self._users
        return ((user_id, users[user_id]) for user_id in self.changed)

    def checkpointed(self) -> None:
        """The changes are written out: forget them (the users changed are now the most
        recently changed)."""
        users = self._users
        for user_id in self.changed:
            users[user_id] = users.pop(user_id)
        self.changed.clear()

    def take_changes(self, encode: Callable[[UserState], bytes]) -> None:
        """Start a checkpoint of the users changed so far, to be encoded with ``encode`` as
        they are now: by :meth:`encode_taken`, or just before one of them changes again.
        Changes from now on count toward the next checkpoint."""
        if self._taken or self._encoded:
            raise RuntimeError("the changes taken before are not collected yet")
        self._encode = encode
        self._taken = dict.fromkeys(self.changed)
        self.checkpointed()

    def encode_taken(self, limit: int | None = None) -> bool:
        """Encode up to ``limit`` of the users taken (None: all); True once all are."""
        taken, encode, users = self._taken, self._encode, self._users
        assert encode is not None or not taken
        encoded = self._encoded
        for _ in range(len(taken) if limit is None else min(limit, len(taken))):
            user_id, _ = taken.popitem()  # from the end: O(1), unlike from the front
            encoded.append((user_id, encode(users[user_id])))  # type: ignore[misc]
        return not taken

    def taken(self) -> list[tuple[str, bytes]]:
        """The users taken, encoded (all of them must be), in the order they were."""
        if self._taken:
            raise RuntimeError(f"{len(self._taken)} users taken are not encoded yet")
        encoded, self._encoded = self._encoded, []
        return encoded

    def _encode_one(self, user_id: str) -> None:
        del self._taken[user_id]
        assert self._encode is not None
        self._encoded.append((user_id, self._encode(self._users[user_id])))

    def evict(self) -> int:
        """Let the least recently changed users beyond the capacity leave memory, when a store
        can give them back; never one changed since the last checkpoint. Call it once the
        checkpoint's records are in the store. Returns how many left."""
        users = self._users
        if self.source is None or self.capacity is None:
            return 0
        excess = len(users) - self.capacity
        if excess <= 0:
            return 0
        changed, taken = self.changed, self._taken
        leaving = []
        for user_id in users:
            if len(leaving) == excess:
                break
            if user_id not in changed and user_id not in taken:
                leaving.append(user_id)
        for user_id in leaving:
            del users[user_id]
        return len(leaving)


class TimeIndex(Generic[Entry]):
    """A min-heap of ``(time, ...)`` entries, each unique, that remembers what was pushed and
    popped since :meth:`checkpointed`.

    >>> index = TimeIndex([(5, "u1"), (9, "u2")])
    >>> index.push((3, "u3")); index.pop_until(5)
    [(3, 'u3'), (5, 'u1')]
    >>> index.pushed, index.popped
    (set(), {(5, 'u1')})
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._heap: list[Entry] = list(entries)
        heapq.heapify(self._heap)
        self.pushed: set[Entry] = set()
        self.popped: set[Entry] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._heap)

    def push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, entry)
        if entry in self.popped:
            self.popped.discard(entry)
        else:
            self.pushed.add(entry)

    def pop_until(self, time: int, inclusive: bool = True) -> list[Entry]:
        """Remove and return the entries at or before ``time`` (before, if not inclusive),
        earliest first."""
        heap = self._heap
        due: list[Entry] = []
        while heap and (heap[0][0] <= time if inclusive else heap[0][0] < time):
            entry = heapq.heappop(heap)
            due.append(entry)
            if entry in self.pushed:
                self.pushed.discard(entry)
            else:
                self.popped.add(entry)
        return due

    def checkpointed(self) -> None:
        self.pushed.clear()
        self.popped.clear()
