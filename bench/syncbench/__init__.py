"""The parts of ``bench/sync_benchmark.py`` (the CLI and the order of the runs), one job per module:

- ``options``: ``BenchOptions``, the paths and their labels, the targets the figures are reported against.
- ``sandboxes``: the two stand-ins in child processes of their own (``SandboxProcess``).
- ``dataset``: the Leads and calls every path syncs (``Dataset``), and the reset to the same start.
- ``measure``: counters, latencies, CPU, the figures of one path, the ratios to naive, the targets.
- ``paths``: the runs of (a) naive, (b) streaming (the Procfile's processes), (c) bulk, and the drain.
- ``report``: the Markdown tables.
"""
