"""Small leaf helpers: JSON with comments, redaction of credentials in URLs."""
