"""Who may use the worker's HTTP server: users, tokens, roles and the rule table.

- :mod:`streams.access.tokens`: token text and its salted scrypt hash.
- :mod:`streams.access.users`: the user database (one SQLite file).
- :mod:`streams.access.roles`: roles and the one table of route rules.
- :mod:`streams.access.credentials`: checks a Bearer token or a session, cached.
- :mod:`streams.access.middleware`: enforces the rules on every request.
- :mod:`streams.access.login`: the login page, sessions and logout.
- :mod:`streams.access.masking`: numbers as viewers see them.
- :mod:`streams.access.lookups`: the audit of who looked up which number.
"""
