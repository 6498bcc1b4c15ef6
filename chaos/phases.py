"""The phases of a chaos run. Each phase acts on the live stack, waits until every call is terminal,
measures (``chaos.verify.measure``), prints its figures and names its targets.

``run_chaos`` runs its phases in order on one ``ChaosContext``; the figures of each land in the result
under the phase's ``name``, its targets under ``targets``. The default phases are ``RunPhase`` (post every
webhook under chaos) and ``ReplayPhase`` (fix the planted causes, ``crm-sync replay --all-failed``). A new
phase (e.g. a reconciliation sweep after missed webhooks) is a ``Phase`` subclass added to the list that
``default_phases`` returns, or passed to ``run_chaos(options, phases=[...])``; see ``chaos/README.md``."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from chaos import report, verify, worker_loss
from chaos.faults import Chaos
from chaos.options import ChaosOptions
from chaos.scenario import Scenario
from chaos.stack import Services, replay_all_failed
from chaos.traffic import post_all, wait_terminal
from standins.stack.redis_server import RedisServer
from standins.stack.sandboxes import Sandboxes


@dataclass
class ChaosContext:
    """Everything a phase may use: the options, the live stack, the scenario, the chaos and the webhooks'
    answers (``answers``: call id → status code or error name, filled by the phase that posts them)."""

    options: ChaosOptions
    console: Console
    rng: random.Random
    redis_server: RedisServer
    boxes: Sandboxes
    services: Services
    scenario: Scenario
    chaos: Chaos
    answers: dict[str, int | str] = field(default_factory=dict)

    def wait_and_measure(self, started: float, what: str) -> dict[str, Any]:
        """Wait until every call that should be terminal is (or the timeout: then say so, as ``what``),
        give late redeliveries and sweeps ``settle`` seconds to do harm, and measure since ``started``."""
        done = wait_terminal(self.services.ledger, self.answers, self.options.timeout, self.console)
        seconds = time.monotonic() - started
        if not done:
            self.console.print(f"[red]timed out after {self.options.timeout:.0f}s {what}[/red]")
        time.sleep(self.options.settle)
        return verify.measure(self.boxes, self.services.ledger, self.scenario, self.answers, seconds)


class Phase:
    """One phase: ``run`` acts, waits and measures (returns the figures); ``report`` prints them;
    ``checks`` names the targets those figures must meet. ``name`` keys the figures and the verdicts."""

    name = "phase"

    def run(self, ctx: ChaosContext) -> dict[str, Any]:
        raise NotImplementedError

    def report(self, ctx: ChaosContext, figures: dict[str, Any]) -> None:
        report.print_figures(ctx.console, f"after the {self.name}", figures)

    def checks(self, figures: dict[str, Any]) -> list[verify.Check]:
        return verify.common_checks(figures)


class RunPhase(Phase):
    """Start the chaos and post every webhook once over the window; figures once every call is terminal."""

    name = "run"

    def run(self, ctx: ChaosContext) -> dict[str, Any]:
        started = time.monotonic()
        ctx.chaos.start(ctx.options.window)
        ctx.answers = post_all(ctx.services.intake, ctx.scenario, ctx.options.window)
        figures = ctx.wait_and_measure(started, "waiting for terminal states")
        figures["worker_loss"] = worker_loss.kill_delays(ctx.services.ledger, ctx.chaos.kills)
        return figures

    def report(self, ctx: ChaosContext, figures: dict[str, Any]) -> None:
        report.print_chaos(ctx.console, ctx.chaos.log, ctx.chaos.summary())
        report.print_figures(ctx.console, "after the run", figures)
        worker_loss.print_delays(ctx.console, figures["worker_loss"])

    def checks(self, figures: dict[str, Any]) -> list[verify.Check]:
        return [*verify.run_checks(figures), worker_loss.check(figures["worker_loss"])]


class ReplayPhase(Phase):
    """Ops fix the planted causes (the calls now exist; the rule is gone) and replay, as documented."""

    name = "replay"

    def __init__(self) -> None:
        self.exit_code: int | None = None

    def run(self, ctx: ChaosContext) -> dict[str, Any]:
        for call in ctx.scenario.missing_calls:
            ctx.boxes.twenty2.add_call(call)
        ctx.boxes.salesforce.set_faults(validation_rules=[])
        started = time.monotonic()
        replayed = replay_all_failed(ctx.services.env)
        self.exit_code = replayed.returncode
        ctx.console.print(f"$ crm-sync replay --all-failed → exit {replayed.returncode}")
        ctx.console.print((replayed.stdout + replayed.stderr).strip()[-2000:], markup=False, highlight=False)
        return ctx.wait_and_measure(started, "waiting after the replay")

    def report(self, ctx: ChaosContext, figures: dict[str, Any]) -> None:
        report.print_figures(ctx.console, "after crm-sync replay --all-failed", figures)

    def checks(self, figures: dict[str, Any]) -> list[verify.Check]:
        return verify.replay_checks(figures, ran=self.exit_code == 0)


def default_phases() -> list[Phase]:
    """The phases of ``chaos/run.py``, new instances for each run (a phase may keep state between its
    ``run`` and its ``checks``)."""
    return [RunPhase(), ReplayPhase()]
