"""A local stand-in for a Salesforce org: OAuth token endpoint, REST API subset, fault switches.

``SalesforceState`` is the org; ``create_app(state)`` serves it (see ``org`` for the behaviour).
"""

from standins.salesforce.org import DEMO_PHONES, ORG_ID, OAuthConfig, SalesforceState, ValidationRule, create_app

__all__ = ["DEMO_PHONES", "ORG_ID", "OAuthConfig", "SalesforceState", "ValidationRule", "create_app"]
