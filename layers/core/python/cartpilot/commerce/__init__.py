"""The merchant side: the commerce port, the UCP adapter, the HTTP client with retries and breakers, errors."""
