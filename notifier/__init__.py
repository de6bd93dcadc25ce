"""notifier: an event-driven incident notification engine.

Events arrive on Kafka, are correlated into alerts, routed to tiered audiences and rendered from
pre-approved, localized templates into messages that are delivered durably.
"""

__version__ = "0.1.0"
