"""HTTP intake (the ``web`` process)."""
