"""The core's own plugin: the WebSocket transport, the exponential policy and the default
hook implementations."""
