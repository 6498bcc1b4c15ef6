"""``SalesforceState``: the stand-in org, with every API it serves."""

from __future__ import annotations

from standins.salesforce.rest import RestApi


class SalesforceState(RestApi):
    """An in-memory Salesforce org serving OAuth and the REST API subset (``create_app`` serves it over
    HTTP). Its state and record primitives: ``Org``; its APIs: ``OAuthServer``, ``RecordWrites``,
    ``CompositeApi``, ``RestApi``. All public methods are thread-safe (one re-entrant lock, ``self.lock``)."""
