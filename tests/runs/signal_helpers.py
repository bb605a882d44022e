"""A callback that sends its own process a signal at a chosen optimizer step, set from the environment.

The step comes from ``PEFTLAB_TEST_SIGNAL`` (``<signal name>@<step>``, e.g. ``SIGTERM@5``), not
from the config: the resumed run is then the very same command (same config), as a user retyping
it would start, and simply does not get the signal.
"""

from __future__ import annotations

import os
import signal

import lightning as L

ENV = "PEFTLAB_TEST_SIGNAL"


class SignalAtStep(L.Callback):
    """Send ``$PEFTLAB_TEST_SIGNAL``'s signal to this process once, before the batch after its step."""

    def __init__(self):
        spec = os.environ.get(ENV, "")
        name, _, step = spec.partition("@")
        self.signum = getattr(signal, name) if name else None
        self.step = int(step or 0)
        self.sent = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        """Signal once training has reached the step."""
        if self.signum is not None and not self.sent and trainer.global_step >= self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)
