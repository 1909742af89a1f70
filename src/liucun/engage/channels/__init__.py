"""The channels messages go out through: WeChat subscribe messages, Alipay template messages
and a signed webhook (docs/messages.md#channels)."""
