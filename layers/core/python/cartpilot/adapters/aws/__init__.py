"""AWS adapters: DynamoDB tables, Step Functions, SNS, Secrets Manager, Powertools idempotency. The only core code that imports boto3 or botocore."""
