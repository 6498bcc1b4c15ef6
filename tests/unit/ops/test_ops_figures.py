"""Pure pieces of the overview: percentiles, the chart's geometry, the calls filter read from a form."""

from __future__ import annotations

from starlette.datastructures import QueryParams

from worker.ledger import State
from worker.ops.chart import HEIGHT, bars
from worker.ops.stats import percentile
from worker.ops.web import call_filter


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 0.5) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0 and percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0


def test_chart_stacks_states_per_hour_to_scale() -> None:
    hours = [{"start": 3600.0 * i, **{s.value: 0 for s in State}} for i in range(24)]
    hours[-1].update(synced=6, failed=2)
    hours[0].update(queued=1)
    chart = bars(hours)
    assert chart["peak"] == 8
    last = [r for r in chart["rects"] if r["title"].startswith("23:00")]
    assert [r["title"] for r in last] == ["23:00 UTC: 6 synced", "23:00 UTC: 2 failed"]
    synced, failed = last
    assert synced["y"] + synced["h"] == HEIGHT - 20 and abs(failed["y"] + failed["h"] - synced["y"]) < 0.2
    assert abs(synced["h"] - 3 * failed["h"]) < 0.2


def test_filter_from_query_parameters() -> None:
    f = call_filter(
        QueryParams("state=failed&code=INVALID_FIELD&stage=write&source=webhook&q=1234&order=old&page=2&per_page=25")
    )
    assert f.states == (State.FAILED,) and (f.code, f.stage, f.source, f.q) == (
        "INVALID_FIELD",
        "write",
        "webhook",
        "1234",
    )
    assert (f.newest_first, f.page, f.per_page) == (False, 2, 25)
    odd = call_filter(QueryParams("state=nonsense&page=-3&per_page=7&since=2h"))
    assert odd.states == () and odd.page == 1 and odd.per_page == 50 and odd.since is not None
    assert call_filter(QueryParams("since=2026-01-31T10:00")).since == 1769853600.0
