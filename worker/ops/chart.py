"""The overview's 24-hour chart as inline SVG geometry (stacked bars per hour, one colour per state)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.ledger import State

COLOURS = {
    State.SYNCED: "#2e7d32",
    State.SKIPPED: "#9e9e9e",
    State.FAILED: "#c62828",
    State.QUEUED: "#f9a825",
    State.SYNCING: "#1565c0",
}
WIDTH, HEIGHT, BOTTOM, LEFT = 720, 180, 20, 34


def bars(hours: list[dict[str, Any]]) -> dict[str, Any]:
    """Rectangles, axis labels and the scale for ``stats.hourly`` rows."""
    peak = max((sum(row[s.value] for s in State) for row in hours), default=0) or 1
    plot_h = HEIGHT - BOTTOM - 6
    slot = (WIDTH - LEFT) / max(len(hours), 1)
    rects, labels = [], []
    for i, row in enumerate(hours):
        x = LEFT + i * slot + 1
        y = HEIGHT - BOTTOM
        for state in (State.SYNCED, State.SKIPPED, State.FAILED, State.QUEUED, State.SYNCING):
            count = row[state.value]
            if not count:
                continue
            h = count / peak * plot_h
            y -= h
            hour = datetime.fromtimestamp(row["start"], UTC).strftime("%H:00")
            rects.append(
                {
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "w": round(slot - 2, 1),
                    "h": round(h, 1),
                    "fill": COLOURS[state],
                    "title": f"{hour} UTC: {count} {state.value}",
                }
            )
        if i % 3 == 0:
            labels.append(
                {"x": round(x + slot / 2, 1), "text": datetime.fromtimestamp(row["start"], UTC).strftime("%H")}
            )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "rects": rects,
        "labels": labels,
        "peak": peak,
        "left": LEFT,
        "base": HEIGHT - BOTTOM,
        "legend": [{"state": s.value, "fill": c} for s, c in COLOURS.items()],
    }
