"""The Knownfix core: models, services, search and suggestions, usable without GraphQL."""
