"""A local stand-in for the Twenty2 API: call details, logs, storage objects, webhooks and fault switches.

``Twenty2State`` holds the calls; ``create_app(state)`` serves it (see ``app`` for the behaviour).
"""

from standins.twenty2.app import create_app
from standins.twenty2.data import SEED_CALL_ID, SEED_FAILED_CALL_ID, SandboxCall, generate_calls
from standins.twenty2.state import Twenty2State

__all__ = ["SEED_CALL_ID", "SEED_FAILED_CALL_ID", "SandboxCall", "Twenty2State", "create_app", "generate_calls"]
