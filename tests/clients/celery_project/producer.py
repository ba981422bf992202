"""The producer of tests/clients/test_celery.py: sends real tasks through the broker, waits for
their results (Celery's file result backend) and prints them as one JSON object.

    python producer.py COUNT    (with the environment tasks.py reads)
"""

from __future__ import annotations

import json
import sys

from tasks import add, app, flaky

count = int(sys.argv[1])
sums = [add.delay(i, i) for i in range(count)]
retried = flaky.delay("second time lucky")
late = add.apply_async((40, 2), countdown=1)
out = {
    "sums": [r.get(timeout=60) for r in sums],
    "flaky": retried.get(timeout=60),
    "late": late.get(timeout=60),
    "states": sorted({r.state for r in [*sums, retried, late]}),
}
app.close()
print(json.dumps(out))
