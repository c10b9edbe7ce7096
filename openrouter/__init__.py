"""The one package that speaks to OpenRouter (see client.py); the sandbox stands in for it."""
