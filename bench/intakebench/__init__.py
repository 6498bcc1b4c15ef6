"""Parts of ``bench/intake_load.py``: its options and constants, the load generator, the service under load."""
