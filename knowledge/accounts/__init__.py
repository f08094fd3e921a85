"""People and credentials: users, teams, API tokens, roles."""
