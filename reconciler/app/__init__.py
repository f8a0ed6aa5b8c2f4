"""The composition root: the one place that builds concrete classes and wires them together.
`engine` (the engine and the config loading both commands share), `daemon` (`reconciler run`),
`up` (`reconciler up` / `down`). Nothing here decides anything about replicas; the command line
(cli/) parses flags into `settings` and maps verdicts to exit codes. Each command imports only
its module, so `up` starts without the daemon's libraries.
"""
