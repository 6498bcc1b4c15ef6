"""The ops console (``/ops``), ``/metrics`` and what both read from Redis.

- ``worker.ops.stats``: the overview's figures, read from the ledger and the shared state in Redis;
- ``worker.ops.queries``: the calls table (filters, search, paging);
- ``worker.ops.jobs``: replays started from the console (bulk mode, progress in Redis), purges, the action log;
- ``worker.ops.auth``: tokens, the signed session cookie, CSRF, the plain-HTTP refusal;
- ``worker.ops.web``: the pages (Jinja2 templates, server-rendered);
- ``worker.ops.metrics``: the Prometheus collector.
"""
