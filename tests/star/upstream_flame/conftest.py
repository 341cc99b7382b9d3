"""PrivateAIM's files here are scripts run by tests/star/test_upstream_examples.py, not tests."""

collect_ignore_glob = ["examples/*.py", "test/*.py"]
