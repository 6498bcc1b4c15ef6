"""Redis scripts whose retried call returns what its first call returned, and does nothing more.

Every Redis client of the product retries a command whose connection was lost (``worker.redis_clients``:
a restart, a failover, a socket timeout). When the lost command had landed, the retry runs it a second
time: a check-and-move script then finds its own move done and answers as if someone else had made it (the
accept of a new call answers "queued", so its caller enqueues nothing; a claimed callback answers "taken",
so nobody triggers it), and its counters count twice. The same hazard as a retried lock acquisition
(``RetrySafeLock``), solved the same way: each call carries a token of its own, unique per call and the
same in its retries (redis-py resends the very arguments), which the script records with its result in
the hash at ``KEYS[1]``; a call whose token is already there is that call's retry and gets the recorded
result back.

- ``once(body)``: the Lua of ``body`` made so; its caller appends ``token()`` as the last argument
  (``OnceScript`` does). ``body`` sees ``KEYS`` and ``ARGV`` as before (without the token) and returns a
  string, a number or nothing.
- ``LUA_HELPERS``: ``once_seen(key, token)`` and ``once_keep(key, token, result)``, for a script that runs
  such a body inside a loop of its own (the intake's batch).

Only the latest call on a hash is remembered: a retry that arrives after another process changed the same
record runs again, against the state it then finds (the state checks of the body decide). The hash keeps
its expiry; a body that left no hash at ``KEYS[1]`` (nothing there) records nothing.
"""

from __future__ import annotations

import os
from typing import Any

import redis

#: The hash fields of ``KEYS[1]`` holding the latest call's token and its result (JSON; '' for nothing).
TOKEN_FIELD, RESULT_FIELD = "_op", "_op_result"

LUA_HELPERS = f"""
local function once_seen(key, token)
  local seen = redis.call('HMGET', key, '{TOKEN_FIELD}', '{RESULT_FIELD}')
  if seen[1] ~= token then return false, nil end
  if seen[2] == '' then return true, nil end
  return true, cjson.decode(seen[2])
end
local function once_keep(key, token, result)
  if redis.call('EXISTS', key) == 0 then return end
  local kept = ''
  if result ~= nil then kept = cjson.encode(result) end
  redis.call('HSET', key, '{TOKEN_FIELD}', token, '{RESULT_FIELD}', kept)
end
"""


def once(body: str) -> str:
    """The Lua of ``body`` run at most once per token (the last ``ARGV``); see the module docstring."""
    return (
        LUA_HELPERS
        + "local function body(KEYS, ARGV)\n"  # the parameters stand in for the globals the body reads
        + body
        + """
end
local token = ARGV[#ARGV]
local replayed, result = once_seen(KEYS[1], token)
if replayed then return result end
result = body(KEYS, {unpack(ARGV, 1, #ARGV - 1)})
once_keep(KEYS[1], token, result)
return result
"""
    )


def token() -> str:
    """A token for one call (16 hex digits: two calls on one record never share one)."""
    return os.urandom(8).hex()


class OnceScript:
    """``client.register_script(once(body))``, called like a redis-py ``Script``; each call gets a token."""

    def __init__(self, client: redis.Redis, body: str) -> None:
        self._script = client.register_script(once(body))

    def __call__(self, *, keys: list[Any], args: list[Any]) -> Any:
        return self._script(keys=keys, args=[*args, token()])
