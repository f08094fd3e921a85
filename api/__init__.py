"""Knownfix's interfaces: GraphQL over Starlette, the command line, webhooks."""
