"""Test harness: real components as pytest fixtures (see ``tests/conftest.py``)."""
