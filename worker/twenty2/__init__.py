"""Twenty2 API: typed models and the HTTP client."""
