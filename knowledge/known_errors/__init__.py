"""Known errors (ITIL problem management): documented root causes with workarounds."""
