"""Model providers behind the ChatProvider port: OpenAI-compatible chat completions (Bedrock Converse, an AWS service, lives in ``adapters/aws/bedrock.py``)."""
