"""The transactional outbox: index and event changes recorded with the data they describe."""
