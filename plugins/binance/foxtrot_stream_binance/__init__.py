"""Binance Spot market-data adapter for foxtrot-stream."""
