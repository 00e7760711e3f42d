"""lth: lottery-ticket research."""
