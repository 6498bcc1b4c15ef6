"""Local stand-ins for the Twenty2 and Salesforce APIs, served over real HTTPS on loopback.

Used by the tests, the demo, the benchmark and the chaos run. They follow the services' documented
behaviour (status codes, error bodies, limits), not what this project's code expects.
"""

#: The services there are stand-ins for, each servable alone (``crm-sync sandbox --only``). Here, not in
#: ``local``, so that the CLI can offer the choice without importing the sandbox apps.
SERVICES = ("twenty2", "salesforce")
