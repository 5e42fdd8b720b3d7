"""Test doubles. The Messages API stand-in lives in :mod:`tasks.agent.standin` (the offline demo uses
it too); it is re-exported here for tests."""

from tasks.agent.standin import *  # noqa: F403
from tasks.agent.standin import (  # noqa: F401
    RecordedRequest,
    Reply,
    StandinMessagesAPI,
    count_tokens,
)

FakeMessagesAPI = StandinMessagesAPI
