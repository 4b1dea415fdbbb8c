"""The inference gateway: an OpenAI-compatible proxy that measures every request,
admits by tier and sheds load to protect objectives (docs/gateway.md)."""
