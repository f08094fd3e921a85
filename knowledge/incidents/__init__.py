"""Incidents (ITIL incident management): detect, classify, assess, plan, execute, review."""
