"""Framework integrations, installed as ``leakguard.integrations`` (Lightning, Ultralytics)."""
