from e2e_helpers import logs, make_feed, sim

__all__ = ["logs", "make_feed", "sim"]
