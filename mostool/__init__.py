"""mostool."""
