"""The broker (port 3213): :mod:`.app` assembles it (the backend in the lifespan,
metrics, the mounted APIs); :mod:`.rest` is the original WonderQ's REST API;
:mod:`.names` holds the queue-naming rules every wire protocol shares;
:mod:`.metrics` serves ``/metrics``. The Amazon SQS protocol mounts beside
the REST API (as ``broker/sqs/``) and calls the same backend."""
