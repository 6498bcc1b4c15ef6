"""Callback-time reader: what a caller said ("kal subah 10 baje", "next Friday", "baad mein") as a reading,
and the Salesforce follow-up time that reading schedules. Pure Python, no I/O."""

from worker.callbacks.evaluate import judge
from worker.callbacks.parse import parse_callback_time
from worker.callbacks.reading import CallbackReading, CallbackStatus, FollowUp, Grain
from worker.callbacks.schedule import schedule_followup

__all__ = [
    "CallbackReading",
    "CallbackStatus",
    "FollowUp",
    "Grain",
    "judge",
    "parse_callback_time",
    "schedule_followup",
]
