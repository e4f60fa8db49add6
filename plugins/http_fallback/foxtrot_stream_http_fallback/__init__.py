"""HTTP polling transport for foxtrot-stream."""
