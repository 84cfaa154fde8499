"""Tracker backends. Use the layer functions in `tracker` rather than these classes."""
