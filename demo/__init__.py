"""spanlake.demo: a fake OpenAI-compatible server and a demo app built on the SDK."""
