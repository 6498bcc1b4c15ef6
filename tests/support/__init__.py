"""Fixtures and helpers shared by the test folders that need servers (``integration``, ``standins``).

Plain modules, not conftests: each folder's ``conftest.py`` imports the fixtures its tests use, so a fixture
is written once and a folder gets only what it needs (``unit`` gets none of these).
"""
