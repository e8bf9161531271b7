"""The at-least-once core: the conductor (one group consumer feeding every inbox,
commits, rebalances), inboxes, acknowledgements, the commit barrier, clocks and the
event in processing (docs/architecture.md)."""
