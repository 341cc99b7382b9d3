"""flame_lab's stand-in for PrivateAIM's ``flame`` package (put on sys.path only without it)."""
