"""The durable primitives of a workflow: each one is an effect."""
