"""Operator surfaces: the command line, the live table and JSON lines, the status server and
/metrics, the demo."""
