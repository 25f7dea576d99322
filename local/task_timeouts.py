"""Test-only control over the emulated Step Functions: end a task's wait as its timeout would.

A waiting task of the order flow (``WaitForApproval``) times out after the brand's approval
timeout, a day on the sandbox brand. Tests of what happens after that cannot wait a day, so
this module ends one task's wait now, through the same path moto's engine takes when the
timeout passes: the flow sees ``States.Timeout`` and takes its Catch, and a later
``SendTaskSuccess`` for the token is answered ``TaskTimedOut``, as Step Functions answers it.
Nothing in a Lambda bundle imports this.
"""

from __future__ import annotations

from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackConsumerTimeout
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

ACCOUNT_ID = "123456789012"  # moto's default account, the one the local stack runs in


def time_out_waiting_task(task_token: str, region: str) -> bool:
    """Ends the wait on ``task_token`` as a timeout; False when no running flow waits on it."""
    backend = stepfunctions_parser_backends[ACCOUNT_ID][region]
    for execution in backend._get_executions(ExecutionStatus.RUNNING):
        endpoint = execution.exec_worker.env.callback_pool_manager.get(task_token)
        if endpoint is None or endpoint.get_outcome() is not None:
            continue
        # The consumer error is what makes a later send answer TaskTimedOut; the interrupt
        # wakes the waiting task with no outcome, which the engine treats as its timeout.
        endpoint.report(CallbackConsumerTimeout())
        endpoint.interrupt_all()
        return True
    return False
