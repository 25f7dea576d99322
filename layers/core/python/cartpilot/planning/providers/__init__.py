"""Model providers behind the ChatProvider port: OpenAI-compatible chat completions and Bedrock Converse."""
