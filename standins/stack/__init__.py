"""The local stack: a private redis-server, the Procfile's processes, both stand-ins over trustme HTTPS,
and ``crm-sync run`` / ``demo``."""
