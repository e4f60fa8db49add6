"""Bridges to host platforms; each needs its optional extra (`foxtrot-stream[vnpy]`)."""
