"""The HTTP API of the distributed mode (FastAPI)."""
