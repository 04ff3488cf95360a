"""Zastava: runtime inspector and admission guard for containers."""

__version__ = "0.1.0"
