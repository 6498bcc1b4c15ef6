"""Automatic callbacks: a promised callback becomes a real Twenty2 call at the promised time, exactly once,
within the rules.

Modules: ``window`` (pure: the calling window and its next opening), ``rules`` (pure: may it be placed now,
and why not), ``store`` (Redis: records, the due-time sorted set, atomic claims), ``facts`` (what is read
from Salesforce and Twenty2), ``runner`` (the beat sweep), ``hooks`` (the sync path's side), ``tasks``
(Celery adapter).
"""
