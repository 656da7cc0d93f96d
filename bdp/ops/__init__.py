"""What people see of the queue: `status` (read straight from the broker, without Huey;
`queued` counts the queued issues inside the broker, `live_runs` lists the runs for `bdp logs -f`),
`metrics` (Prometheus text), `notify` (BDP_NOTIFY webhooks and commands) and `report`
(recent runs summed and laid out in time; `report_svg` and `report_html` draw it as a page);
`config_view` shows each setting and where its value came from (`bdp config`).

Read-only towards the queue; may import `broker`, `repo`, `redact`, `config`, `models`.
"""
