"""Structured (channel) pruning: channel dependency groups, channel masks, and `shrink`."""
