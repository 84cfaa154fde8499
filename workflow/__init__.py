"""A durable workflow engine whose primitives are effects."""
