"""Delivery channels: one module per channel, all speaking the :class:`Channel` protocol."""
