"""OKX Spot market-data adapter for foxtrot-stream, written on its public API only."""
