"""The sync core: what the streaming path (``stream``) and the bulk path (``bulk``) share lives in ``core``."""
