"""A sandbox hospital node: its data (synthetic or a user's folder), FHIR store and agent.

Never imports ``flame_lab.sandbox.hub``: a node meets the hub only over HTTP.
"""
