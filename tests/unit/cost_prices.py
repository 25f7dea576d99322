"""Written-out prices the cost tests price goals with: us-east-1 list prices as bench/prices.yaml
holds them, fixed here so a test's expected figures do not move when the table is updated."""

from __future__ import annotations

from bench.cost_units import PriceTable

AWS_PRICES = {
    "stepfunctions_per_transition": 0.000025,
    "lambda_per_gb_second_arm64": 0.0000133334,
    "lambda_per_request": 0.0000002,
    "lambda_billing_granularity_ms": 1,
    "dynamodb_per_write_request_unit": 0.000000625,
    "dynamodb_per_read_request_unit": 0.000000125,
    "sns_per_publish": 0.0000005,
    "sns_per_sms": 0.00645,
    "ses_per_email": 0.0001,
    "logs_per_gb_ingested": 0.5,
    "apigateway_rest_per_request": 0.0000035,
    "waf_per_request": 0.0000006,
    "kms_per_asymmetric_request": 0.000015,
    "kms_per_symmetric_request": 0.000003,
    "s3_per_put": 0.000005,
    "s3_per_get": 0.0000004,
    "secretsmanager_per_call": 0.000005,
}
EXPRESS_PRICES = {
    "stepfunctions_express_per_request": 0.000001,
    "stepfunctions_express_per_gb_second": 0.00001667,
}
MODEL_PRICES = {"model_per_million_input_tokens": 0.4, "model_per_million_output_tokens": 1.2}
# Standard and Express workflows, no model.
PRICES = {**AWS_PRICES, **EXPRESS_PRICES}
TABLE = PriceTable("2026-11-30", "us-east-1", PRICES, quotas={})
