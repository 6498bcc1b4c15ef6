"""``crm-sync``: the command line. ``main`` is the entry point; importing this package registers every command."""

from worker.cli import callbacks, calls, doctor, failures, reconcile, service
from worker.cli.app import main
from worker.cli.failures import read_call_ids
from worker.plan_report import plan_as_dict

__all__ = ["callbacks", "calls", "doctor", "failures", "main", "plan_as_dict", "read_call_ids", "reconcile", "service"]
