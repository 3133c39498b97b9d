"""A partition's state: each user's record, what changed since the last checkpoint, and the
layout and store that keep it (``codec``, ``models``, ``checkpoint``, ``store``)."""

from pipeline.state.tracking import TimeIndex, UserCache, UserSource
from pipeline.state.user import Hold, UserState, describe_user, id_hash

__all__ = ["Hold", "TimeIndex", "UserCache", "UserSource", "UserState", "describe_user",
           "id_hash"]
