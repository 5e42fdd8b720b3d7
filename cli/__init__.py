"""The `plan-executor` command line: `app` registers one module per command (parse, server, run,
deploy, answer, watch); `console`, `live` and `status_view` are what a terminal shows; `demo`
builds the demo crate and its scripted stand-in agents.
"""
