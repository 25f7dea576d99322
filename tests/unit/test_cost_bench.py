"""The arithmetic of bench/cost.py: DynamoDB units from item sizes, prices, logs and capacity."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from bench.cost_units import (
    PRICES_FILE,
    Bound,
    DynamoUnits,
    GoalUsage,
    LambdaRun,
    PriceTable,
    billed_gb_seconds,
    binding,
    concurrency_bound,
    goals_per_second,
    is_logged,
    load_prices,
    logging_settings,
    model_cost,
    module_constants,
    open_executions_bound,
    price_goal,
    read_units,
    request_units,
    state_machine_log_bytes,
    write_units,
)
from cartpilot_local.metering import DynamoRequest, Meter, item_size, metering_dynamodb, number_size
from tests.unit.cost_prices import AWS_PRICES, MODEL_PRICES

# --- item sizes ---------------------------------------------------------------------------------


def test_item_size_counts_names_and_values_as_dynamodb_does():
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"S": "é"}}) == 1 + 2  # UTF-8 bytes, not characters
    assert item_size({"flag": {"BOOL": True}, "gone": {"NULL": True}}) == 4 + 1 + 4 + 1
    assert item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 on the wire: the raw bytes count
    # A list or map: 3 bytes, plus 1 per element, plus the elements (and a map's names).
    assert item_size({"l": {"L": [{"S": "ab"}, {"S": "c"}]}}) == 1 + 3 + (1 + 2) + (1 + 1)
    assert item_size({"m": {"M": {"k": {"S": "vv"}}}}) == 1 + 3 + (1 + 1 + 2)
    assert item_size({"ss": {"SS": ["a", "bc"]}}) == 2 + 3
    assert item_size(None) == 0 and item_size({}) == 0


def test_numbers_take_a_byte_per_two_significant_digits_plus_one():
    assert number_size("7") == 2
    assert number_size("12") == 2
    assert number_size("123") == 3
    assert number_size("-1234.5") == 4
    assert number_size("1000") == 2  # trailing zeros are not significant
    assert number_size("0") == 2


# --- request units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "units"), [(0, 1), (1, 1), (4095, 1), (4096, 1), (4097, 2), (8192, 2), (8193, 3)]
)
def test_strongly_consistent_reads_cost_a_unit_per_4_kb_started(size: int, units: int):
    assert read_units(size, consistent=True) == units


def test_eventually_consistent_reads_cost_half_and_transactional_reads_double():
    assert read_units(4096, consistent=False) == 0.5
    assert read_units(4097, consistent=False) == 1.0
    assert read_units(0, consistent=False) == 0.5  # a read of nothing still costs
    assert read_units(4097, consistent=False, transactional=True) == 4.0


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1, 1), (1023, 1), (1024, 1), (1025, 2), (5000, 5)])
def test_writes_cost_a_unit_per_1_kb_started(size: int, units: int):
    assert write_units(size) == units
    assert write_units(size, transactional=True) == 2 * units


def test_request_units_round_each_item_separately_but_a_query_as_a_whole():
    batch = DynamoRequest("api", "BatchGetItem", "t", read_sizes=(100, 100, 5000))
    assert request_units(batch) == DynamoUnits(1, 0.5 + 0.5 + 1.0, 0)
    query = DynamoRequest("api", "Query", "t", read_sizes=(5000,), consistent=True)
    assert request_units(query) == DynamoUnits(1, 2.0, 0)
    transaction = DynamoRequest(
        "payment", "TransactWriteItems", "t", write_sizes=(100, 2048), transactional=True
    )
    assert request_units(transaction) == DynamoUnits(1, 0.0, 2 * 1 + 2 * 2)


def test_the_seam_bills_a_write_by_the_larger_of_the_item_before_and_after():
    meter = Meter()
    with mock_aws(), metering_dynamodb(meter):
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        big = "x" * 3000
        client.put_item(TableName="t", Item={"pk": {"S": "a"}, "body": {"S": big}})
        # Shrinking the item still bills its size before the write.
        client.update_item(
            TableName="t",
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET body = :v",
            ExpressionAttributeValues={":v": {"S": "small"}},
        )
        client.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)
        client.get_item(TableName="t", Key={"pk": {"S": "missing"}})
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(
                TableName="t",
                Item={"pk": {"S": "a"}, "body": {"S": "y"}},
                ConditionExpression="attribute_not_exists(pk)",
            )
    put, update, get, miss, failed = meter.dynamodb
    full = 2 + 1 + 4 + 3000
    assert put.operation == "PutItem" and put.write_sizes == (full,)
    assert request_units(put).write_units == 3
    assert update.write_sizes == (full,) and request_units(update).write_units == 3
    assert get.read_sizes == (2 + 1 + 4 + 5,) and get.consistent
    assert request_units(miss).read_units == 0.5
    # A failed condition bills the item it checked.
    assert failed.write_sizes == (2 + 1 + 4 + 5,) and request_units(failed).write_units == 1


# --- prices -------------------------------------------------------------------------------------

TABLE = PriceTable(date="2026-01-01", region="us-east-1", prices={**AWS_PRICES, **MODEL_PRICES}, quotas={})


def test_a_goal_is_priced_service_by_service_from_the_table():
    usage = GoalUsage(
        transitions=14,
        retries=1,
        invocations=[LambdaRun("planner", 1024, 100.2), LambdaRun("payment", 512, 50.0)],
        dynamo=DynamoUnits(10, 8.0, 40),
        api_requests=1,
        sns_publishes=2,
        emails=1,
        kms_asymmetric=1,
        s3_puts=3,
        state_machine_log_bytes=1024**3 // 1000,
    )
    usd = price_goal(usage, TABLE)
    assert usd["stepfunctions"] == pytest.approx(15 * 0.000025)
    # 101 ms billed at 1 GB, 50 ms at 0.5 GB; two requests.
    assert usd["lambda"] == pytest.approx((0.101 + 0.025) * 0.0000133334 + 2 * 0.0000002)
    assert usd["dynamodb"] == pytest.approx(8 * 0.000000125 + 40 * 0.000000625)
    assert usd["notifications"] == pytest.approx(2 * 0.0000005 + 0.0001)
    assert usd["logs"] == pytest.approx(0.5 / 1000, rel=1e-3)
    assert usd["apigateway"] == pytest.approx(0.0000041)
    assert usd["kms"] == pytest.approx(0.000015)
    assert usd["s3"] == pytest.approx(0.000015)
    assert usd["secretsmanager"] == 0


def test_lambda_bills_each_started_millisecond():
    assert billed_gb_seconds(LambdaRun("x", 1024, 0.2)) == pytest.approx(0.001)
    assert billed_gb_seconds(LambdaRun("x", 512, 1000.0)) == pytest.approx(0.5)


def test_model_cost_uses_the_per_million_prices():
    assert model_cost(3000, 500, TABLE) == pytest.approx((3000 * 0.4 + 500 * 1.2) / 1e6)


def test_the_shipped_price_table_is_dated_and_prices_every_service():
    table = load_prices(PRICES_FILE)
    assert table.region == "us-east-1"
    datetime.strptime(table.date, "%Y-%m-%d")
    assert set(TABLE.prices) <= set(table.prices)
    assert all(float(table.prices[name]) > 0 for name in TABLE.prices)
    assert table.quotas["stepfunctions_open_executions"] > 0
    assert table.assumptions["merchant_call_ms"] > 0


# --- state-machine logs -------------------------------------------------------------------------

ARN = "arn:aws:states:us-east-1:123456789012:execution:flow:g-1"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY = [
    {"id": 1, "previousEventId": 0, "timestamp": WHEN, "type": "ExecutionStarted",
     "executionStartedEventDetails": {"input": '{"goalId": "g-1", "pad": "' + "x" * 500 + '"}', "roleArn": "r"}},
    {"id": 2, "previousEventId": 1, "timestamp": WHEN, "type": "TaskStateEntered",
     "stateEnteredEventDetails": {"name": "PlanOrder", "input": "{}"}},
    {"id": 3, "previousEventId": 2, "timestamp": WHEN, "type": "TaskFailed",
     "taskFailedEventDetails": {"error": "Boom", "cause": "why"}},
    {"id": 4, "previousEventId": 3, "timestamp": WHEN, "type": "ExecutionFailed",
     "executionFailedEventDetails": {"error": "Boom"}},
]  # fmt: skip


def test_state_machine_logs_leave_out_execution_data_unless_included():
    without = state_machine_log_bytes(HISTORY, ARN, level="ALL", include_data=False)
    with_data = state_machine_log_bytes(HISTORY, ARN, level="ALL", include_data=True)
    assert with_data - without > 500
    assert state_machine_log_bytes(HISTORY, ARN, level="OFF", include_data=True) == 0


def test_the_log_level_filters_events():
    assert [e["type"] for e in HISTORY if is_logged(e["type"], "ERROR")] == ["TaskFailed", "ExecutionFailed"]
    assert [e["type"] for e in HISTORY if is_logged(e["type"], "FATAL")] == ["ExecutionFailed"]
    assert all(is_logged(e["type"], "ALL") for e in HISTORY)
    errors_only = state_machine_log_bytes(HISTORY, ARN, level="ERROR", include_data=False)
    assert 0 < errors_only < state_machine_log_bytes(HISTORY, ARN, level="ALL", include_data=False)


def test_logging_settings_and_constants_are_read_without_importing_the_cdk(tmp_path: Path):
    source = tmp_path / "orchestration.py"
    source.write_text(
        "from aws_cdk import aws_stepfunctions as sfn\n"
        "EXECUTION_LOG_LEVEL = sfn.LogLevel.ERROR\nINCLUDE_EXECUTION_DATA = True\nRATE = 50\n",
        encoding="utf-8",
    )
    assert logging_settings(source) == ("ERROR", True)
    assert module_constants(source, ["RATE", "MISSING"]) == {"RATE": 50}


# --- capacity -----------------------------------------------------------------------------------


def test_concurrency_bounds_follow_littles_law():
    # Five reserved containers, one 0.5 s call per goal: ten goals a second.
    assert concurrency_bound(5, 1, 0.5) == pytest.approx(10.0)
    assert concurrency_bound(5, 2, 0.5) == pytest.approx(5.0)
    assert goals_per_second(300, 1) == 300
    assert math.isinf(goals_per_second(300, 0))


def test_open_executions_bound_goals_by_how_long_each_stays_open():
    # A million open executions, each open for a three-day undo window.
    assert open_executions_bound(1_000_000, 3 * 86400) == pytest.approx(3.858, rel=1e-3)


def test_the_lowest_bound_binds_first():
    bounds = [Bound("a", "", "", 10.0, ""), Bound("b", "", "", 3.9, ""), Bound("c", "", "", math.inf, "")]
    assert binding(bounds).name == "b"
