"""crm-sync: Twenty2 call outcomes into Salesforce."""
