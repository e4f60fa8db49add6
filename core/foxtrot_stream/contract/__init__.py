"""The plugin contract and its loader: `Tick`, the records and protocols plugins exchange with
the core, the hook specifications, and the plugin manager."""
