"""PrivateAIM's example analyses (Apache-2.0), vendored unchanged; see NOTICE.md."""
