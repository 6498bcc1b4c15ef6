"""Smoke tests of the tools beside the product (``bench/``, ``chaos/``) and of the README's promises.

They start what they need themselves (the benchmark and the chaos run bring their own stack)."""
