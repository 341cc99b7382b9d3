"""Thin tornado handlers: parse the request, call the store or ``lifecycle.Core``, render."""
