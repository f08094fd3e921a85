"""Alert sources that may open incidents through webhooks."""
