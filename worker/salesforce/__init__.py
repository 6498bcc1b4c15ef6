"""Salesforce: login flows, the thin REST client, lead lookup and the plan writer."""
