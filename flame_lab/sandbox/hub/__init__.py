"""A local FLAME Hub: the same HTTP API as PrivateAIM's Hub, over SQLite and a blob folder.

``app.make_app`` holds the one route table, ``handlers/`` the thin HTTP layer per resource
group, ``store`` the database and blobs, ``lifecycle`` the analysis rules, ``query`` rapiq.
"""
