"""Resolution suggestions for incidents (a domain service the API, CLI and MCP share)."""
