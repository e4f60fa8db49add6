"""foxtrot-stream: real-time exchange market data for the Foxtrot trading platform."""

__version__ = "0.1.0"

from foxtrot_stream.engine import Consumer, StreamEngine

__all__ = ["Consumer", "StreamEngine", "__version__"]
