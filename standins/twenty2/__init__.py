"""A local stand-in for the Twenty2 API: call details, logs, storage objects, webhooks and fault switches.

``Twenty2State`` holds the calls; ``create_app(state)`` serves it.
"""

from standins.twenty2.app import (
    SEED_CALL_ID,
    SEED_FAILED_CALL_ID,
    SandboxCall,
    Twenty2State,
    create_app,
    generate_calls,
)

__all__ = ["SEED_CALL_ID", "SEED_FAILED_CALL_ID", "SandboxCall", "Twenty2State", "create_app", "generate_calls"]
