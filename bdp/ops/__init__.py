"""What people see of the queue: `status` (read straight from the broker, without Huey),
`metrics` (Prometheus text) and `notify` (BDP_NOTIFY webhooks and commands).

Read-only towards the queue; may import `broker`, `repo`, `redact`, `config`, `models`.
"""
