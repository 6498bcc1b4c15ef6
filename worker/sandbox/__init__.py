"""Local stand-ins for the Twenty2 and Salesforce APIs, served over real HTTPS on loopback.

Used by the tests, the demo, the benchmark and the chaos run. They follow the services' documented
behaviour (status codes, error bodies, limits), not what this project's code expects.
"""
