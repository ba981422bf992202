"""The REST API's field names where they differ from the model's: the seed's
wire vocabulary, mapped in this one place for both ends of the wire (the REST
API that writes them and the Python client that reads them)."""

from __future__ import annotations

# Message
TOKEN = "reservation_token"  # Message.token
VISIBLE_AT = "retrievable_at"  # Message.visible_at
# QueueStats
MESSAGES = "queue_size"  # QueueStats.messages
VISIBLE = "retrievable_size"  # QueueStats.visible
IN_FLIGHT = "in_flight_size"  # QueueStats.in_flight
DELAYED = "delayed_size"  # QueueStats.delayed
OLDEST_AGE = "oldest_message_age"  # seconds since QueueStats.oldest_created_at
