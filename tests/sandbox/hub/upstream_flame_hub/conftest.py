"""PrivateAIM's suite here is run by tests/sandbox/hub/test_upstream_suite.py, in its own
pytest process against a sandbox hub; it is not collected as part of flame_lab's tests."""

collect_ignore = ["suite"]
