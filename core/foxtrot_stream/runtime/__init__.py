"""The runtime: the feed, its shard supervisors, the sequencer, consumer buffers, metrics and
the status records."""
