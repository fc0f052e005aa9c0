"""The client side of the distributed mode: the gateway HTTP client and the CLI commands."""
