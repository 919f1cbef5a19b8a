"""Example training scripts that run through the adapter (checked by tests/cell/test_adapter.py)."""
