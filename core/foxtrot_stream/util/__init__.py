"""Small leaf helpers: JSON with comments, redaction of credentials in URLs, the stable
assignment of symbols to shards."""
