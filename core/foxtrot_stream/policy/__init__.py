"""The pure state machines: reconnection backoff, circuit breaker, and the liveness
contract's coverage."""
