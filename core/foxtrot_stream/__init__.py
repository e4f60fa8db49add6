"""foxtrot-stream: real-time exchange market data for the Foxtrot trading platform."""

__version__ = "0.1.0"
