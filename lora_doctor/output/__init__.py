"""Text on the terminal: findings like flutter doctor, JSON, and text that never fails to encode."""
