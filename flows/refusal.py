"""A refused run ends with its one sentence, not with Prefect's traceback of it.

A flow run refused before it did anything (another run holds the campaign, the campaign is finished, the
machine's compute setting is wrong) returns a ``Failed`` state whose data is the refusal, so an in-process caller
(``matloop run``) still gets the exception from ``state.result()``.  But a worker's flow-run process
(``python -m prefect.engine``) then asks the engine for the run's result too, which raises that refusal, and
Prefect logs it as "Engine execution exited with unexpected exception" with a full traceback, in the run's log
in the UI and in the worker's output.  The run's own log already says why in one sentence (``refused: ...``, and
Prefect's "Finished in state Failed(...)"), so that one record is dropped: only for this refusal, nothing else.
"""

from __future__ import annotations

import logging

#: The logger Prefect's engine reports a run's unexpected exception on (``flow_run_logger``).
ENGINE_RUN_LOGGER = "prefect.flow_runs"


class _DropRefusalTraceback(logging.Filter):
    """Drops the engine's record of ``refusal`` (same type and sentence: the result may be a copy of it)."""

    def __init__(self, refusal: BaseException) -> None:
        super().__init__()
        self.refusal = refusal

    def filter(self, record: logging.LogRecord) -> bool:
        raised = record.exc_info[1] if record.exc_info else None
        return not (raised is not None and type(raised) is type(self.refusal) and str(raised) == str(self.refusal))


def quiet_refusal(refusal: BaseException) -> None:
    """From now on in this process, Prefect's engine logs no traceback for ``refusal``."""
    logging.getLogger(ENGINE_RUN_LOGGER).addFilter(_DropRefusalTraceback(refusal))
