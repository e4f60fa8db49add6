"""Bridges to host platforms: `foxtrot` (runs inside Foxtrot, which is on no package index) and
`vnpy` (needs the optional extra `foxtrot-stream[vnpy]`); `_host` is what they share."""
