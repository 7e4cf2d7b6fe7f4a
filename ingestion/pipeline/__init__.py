"""The pipeline: one module per stage, and the runner that claims, leases, retries and advances jobs."""
