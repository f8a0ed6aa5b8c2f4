"""The dashboard's HTML, rendered on the server from a `Snapshot` by pure functions: the pin and
the branch, applications -> deployments -> replicas, the commit timeline and the recent replica
events. Every text that comes from a user (commit subjects, authors, errors, the replicas' own
messages) is escaped. Times are rendered as UTC and marked (`data-ago`, `data-since`) for the
page's script to show as "12 s ago" / uptimes; nothing here depends on the clock, so the HTML of
one snapshot is the same on every request and can be cached and compared (its digest is the
page's revision).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from html import escape

from reconciler.model import (
    ApplicationStatusInfo,
    CommitStatus,
    DeploymentStatusInfo,
    EngineNode,
    Snapshot,
)
from reconciler.records import Change, Event, ReplicaEvent, ReplicaRow, TimelineEntry

_TONE = {
    "RUNNING": "ok",
    "HEALTHY": "ok",
    "applied": "ok",
    "ready": "ok",
    "started": "ok",
    "recovered": "ok",
    "DEPLOYING": "busy",
    "UPDATING": "busy",
    "UPSCALING": "busy",
    "DOWNSCALING": "busy",
    "STARTING": "busy",
    "preparing": "busy",
    "draining": "busy",
    "STOPPING": "dim",
    "removed": "dim",
    "unpinned": "dim",
    "waiting": "pin",
    "pinned": "pin",
    "DEPLOY_FAILED": "bad",
    "UNHEALTHY": "bad",
    "FAILED": "bad",
    "STALE": "bad",
    "invalid": "bad",
    "error": "bad",
    "pin-refused": "bad",
    "failed": "bad",
    "unhealthy": "bad",
    "refused": "bad",
    "down": "bad",
    "disconnected": "bad",
}
_VERB = {
    "create": "created",
    "remove": "removed",
    "scale": "scaled",
    "reconfigure": "reconfigured in place",
    "restart": "rolling restart",
    "unchanged": "unchanged",
}
_EVENT_TEXT = {
    Event.APPLIED: "applied",
    Event.INVALID: "refused",
    Event.ERROR: "unreadable",
    Event.PINNED: "pinned",
    Event.PIN_REFUSED: "pin refused",
    Event.UNPINNED: "unpinned",
}
_LOCATED = re.compile(r"\A(\S+?:\d+(?::\d+)?): (.*)\Z", re.S)
_RANK = {"bad": 3, "busy": 2, "dim": 1, "pin": 1, "ok": 0}


def rev_of(html: str) -> str:
    return hashlib.sha256(html.encode("utf-8")).hexdigest()[:16]


def overall(snapshot: Snapshot) -> str:
    """The worst application status (NOT_STARTED before the first deploy)."""
    statuses = [str(a.status) for a in snapshot.applications]
    if not statuses:
        return "NOT_STARTED"
    return max(statuses, key=lambda s: _RANK.get(_TONE.get(s, "dim"), 1))


# --- small pieces --------------------------------------------------------------------------


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def chip(text: str, tone_of: str | None = None) -> str:
    tone = _TONE.get(tone_of or text, "dim")
    return f'<span class="chip {tone}">{_e(text)}</span>'


def _when(ts: float) -> str:
    if not ts:
        return "-"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
    return f'<time datetime="{iso}" data-ago="{ts:.3f}">{text}</time>'


def _since(ts: float) -> str:
    return f'<span data-since="{ts:.3f}">-</span>' if ts else "-"


def _sha(commit: str | None) -> str:
    if not commit:
        return "-"
    return f'<code class="sha" title="{_e(commit)}">{_e(commit[:12])}</code>'


def _message(text: str) -> str:
    return f'<pre class="msg">{_e(text)}</pre>' if text else ""


def _error_item(line: str) -> str:
    match = _LOCATED.match(line)
    if match is None:
        return f"<li>{_e(line)}</li>"
    return f"<li><code>{_e(match[1])}</code> {_e(match[2])}</li>"


def _button(action: str, label: str, commit: str = "", enabled: bool = True) -> str:
    if not enabled:
        return ""
    data = f' data-commit="{_e(commit)}"' if commit else ""
    return f'<button type="button" data-action="{action}"{data}>{_e(label)}</button>'


# --- the pin and the branch ----------------------------------------------------------------


def source_bar(snapshot: Snapshot, actions: bool) -> str:
    c, loop = snapshot.commits, snapshot.loop
    rows = [
        ("status", chip(overall(snapshot))),
        ("applied", _sha(c.applied) + (f" since {_when(c.applied_at)}" if c.applied_at else "")),
        ("branch head", _sha(c.latest)),
    ]
    if c.preparing:
        doing = f": {_e(c.progress)}" if c.progress else ""
        rows.append(("preparing", _sha(c.preparing) + doing))
    if loop.source_error:
        rows.append(("git", f'<span class="bad-text">{_e(loop.source_error)}</span>'))
    if loop.engine_error:
        rows.append(("engine", f'<span class="bad-text">{_e(loop.engine_error)}</span>'))
    cells = "".join(f"<div><dt>{_e(k)}</dt><dd>{v}</dd></div>" for k, v in rows)
    if c.warnings:  # what validating the applied commit noted without refusing it
        items = "".join(_error_item(line) for line in c.warnings)
        cells += f'<div class="warnings"><dt>warnings</dt><dd><ul>{items}</ul></dd></div>'

    rollback = _button("rollback", "Roll back to the previous commit", enabled=actions)
    return f'<section id="source"><dl class="facts">{cells}</dl>{_pin_banner(c, actions)}' + (
        f'<p class="actions">{rollback}</p></section>'
    )


def _pin_banner(c: CommitStatus, actions: bool) -> str:
    if c.pinned is None:
        return ""
    why = f" ({_e(c.pin_reason)})" if c.pin_reason and c.pin_reason != "pinned" else ""
    text = f"Pinned at {_sha(c.pinned)}{why} since {_when(c.pinned_at)}."
    if c.behind_pin:
        text += f" The branch is at {_sha(c.latest)}: waiting behind the pin."
    unpin = _button("unpin", "Unpin: follow the branch", enabled=actions)
    return f'<div class="pin-banner" id="pin-banner">{chip("pinned")} {text} {unpin}</div>'


# --- applications --------------------------------------------------------------------------


def _replica_row(r: ReplicaRow) -> str:
    version = _e(r.version[:12]) + ("" if r.current else ' <span class="old">old</span>')
    error = f'<span class="bad-text">{_e(r.error)}</span>' if r.error else ""
    return (
        f'<tr class="replica"><td data-label="replica">{_e(r.name)}</td>'
        f'<td data-label="state">{chip(r.state)}</td>'
        f'<td data-label="version"><code>{version}</code></td>'
        f'<td data-label="up">{_since(r.created_at)}</td>'
        f'<td data-label="health">{error or "-"}</td></tr>'
    )


def _deployment(d: DeploymentStatusInfo) -> str:
    states = dict(d.replica_states)
    running = states.get("RUNNING", 0)
    counts = f"{running}/{d.target_replicas}"
    if d.pending_replicas:
        counts += f' <span class="bad-text">({d.pending_replicas} pending)</span>'
    if d.autoscaling is not None:  # the bounds, not the load: the page changes on decisions
        a = d.autoscaling
        counts += f' <span class="dim-text">(autoscaling {a.min_replicas}-{a.max_replicas})</span>'
    head = (
        f'<tr class="deployment"><th scope="row" data-label="deployment">{_e(d.name)}</th>'
        f'<td data-label="status">{chip(str(d.status))}</td>'
        f'<td data-label="replicas">{counts}</td>'
        f'<td data-label="version"><code>{_e(d.version[:12] or "-")}</code></td>'
        f'<td data-label="image">{_e(d.image or "default")}</td>'
        f'<td data-label="failed starts">{d.start_failures}</td></tr>'
    )
    message = (
        f'<tr class="note"><td colspan="6">{_message(d.message)}</td></tr>' if d.message else ""
    )
    replicas = "".join(_replica_row(r) for r in d.replicas)
    if replicas:
        replicas = (
            '<tr class="replicas"><td colspan="6"><table class="replicas">'
            "<thead><tr><th>replica</th><th>state</th><th>version</th><th>up</th>"
            f"<th>health</th></tr></thead><tbody>{replicas}</tbody></table></td></tr>"
        )
    return head + message + replicas


def _application(app: ApplicationStatusInfo) -> str:
    route = f" <code>{_e(app.route_prefix)}</code>" if app.route_prefix else ""
    rows = "".join(_deployment(d) for d in app.deployments)
    table = (
        '<table class="deployments"><thead><tr><th>deployment</th><th>status</th>'
        "<th>running</th><th>version</th><th>image</th><th>failed starts</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else ""
    )
    return (
        f'<article class="app" id="app-{_e(app.name)}"><h3>{_e(app.name)} '
        f"{chip(str(app.status))}{route}</h3>{_message(app.message)}{table}</article>"
    )


def applications(snapshot: Snapshot) -> str:
    apps = "".join(_application(a) for a in snapshot.applications)
    return f'<section id="applications"><h2>Applications</h2>{apps or "<p>None yet.</p>"}</section>'


# --- commits -------------------------------------------------------------------------------


def _change(ch: Change) -> str:
    why = f" ({_e('; '.join(ch.reasons))})" if ch.reasons else ""
    where = f"{ch.app}/{ch.deployment}" if ch.app != "default" else ch.deployment
    return f"<li><b>{_e(where)}</b>: {_e(_VERB.get(ch.kind, ch.kind))}{why}</li>"


def _entry(e: TimelineEntry, c: CommitStatus, actions: bool) -> str:
    label = _EVENT_TEXT.get(e.event, str(e.event))
    subject = f'<span class="subject">{_e(e.info.subject)}</span>' if e.info.subject else ""
    author = f' <span class="author">by {_e(e.info.author)}</span>' if e.info.author else ""
    note = f' <span class="why">{_e(e.message)}</span>' if e.message else ""
    errors = "".join(_error_item(line) for line in e.errors)
    changes = "".join(_change(ch) for ch in e.changes)
    can_pin = e.event in (Event.APPLIED, Event.PINNED) and c.pinned != e.commit
    pin = _button("pin", "Pin this commit", e.commit, enabled=actions and can_pin)
    return (
        f'<li class="entry" data-commit="{_e(e.commit)}" data-event="{_e(e.event)}">'
        f'<div class="line">{chip(label, str(e.event))} {_sha(e.commit)} {subject}{author}'
        f" {_when(e.at)}{note} {pin}</div>"
        + (f'<ul class="errors">{errors}</ul>' if errors else "")
        + (f'<ul class="changes">{changes}</ul>' if changes else "")
        + "</li>"
    )


def _pending(c: CommitStatus) -> Iterable[str]:
    """What has no timeline entry yet: a commit being prepared, a head waiting behind the pin."""
    if c.preparing:
        doing = f": {_e(c.progress)}" if c.progress else ""
        yield (
            f'<li class="entry" data-commit="{_e(c.preparing)}" data-event="preparing">'
            f'<div class="line">{chip("preparing")} {_sha(c.preparing)}{doing}</div></li>'
        )
    if c.behind_pin and c.latest and c.latest != c.preparing:
        yield (
            f'<li class="entry" data-commit="{_e(c.latest)}" data-event="waiting">'
            f'<div class="line">{chip("waiting behind the pin", "waiting")} {_sha(c.latest)} '
            f"the branch head, pinned at {_sha(c.pinned)}</div></li>"
        )


def timeline(snapshot: Snapshot, actions: bool) -> str:
    c = snapshot.commits
    items = [*_pending(c), *(_entry(e, c, actions) for e in snapshot.timeline)]
    body = "".join(items) or "<li>No commit judged yet.</li>"
    return f'<section id="commits"><h2>Commits</h2><ol class="timeline">{body}</ol></section>'


# --- events --------------------------------------------------------------------------------


def _event_row(ev: ReplicaEvent) -> str:
    where = "/".join(p for p in (ev.app, ev.deployment) if p and p != "default")
    replica = ev.replica or where or "-"
    return (
        f'<tr><td data-label="when">{_when(ev.at)}</td>'
        f'<td data-label="replica">{_e(replica)}</td>'
        f'<td data-label="event">{chip(ev.kind)}</td>'
        f'<td data-label="detail">{_e(ev.message) or "-"}</td></tr>'
    )


def events(snapshot: Snapshot) -> str:
    rows = "".join(_event_row(ev) for ev in snapshot.events)
    table = (
        '<table class="events"><thead><tr><th>when</th><th>replica</th><th>event</th>'
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else "<p>Nothing yet.</p>"
    )
    return f'<section id="events"><h2>Recent events</h2>{table}</section>'


def _node_row(n: EngineNode) -> str:
    return (
        f'<tr><td data-label="node">{_e(n.name)}</td>'
        f'<td data-label="role">{_e(n.role or "-")}</td>'
        f'<td data-label="state">{chip(n.state if not n.ready else "ready")}</td>'
        f'<td data-label="replicas">{n.replicas}</td>'
        f'<td data-label="address"><code>{_e(n.address)}</code></td>'
        f'<td data-label="detail">{_e(n.message) or "-"}</td></tr>'
    )


def nodes(snapshot: Snapshot) -> str:
    """A multi-node engine's nodes (none on a single host: no section)."""
    if not snapshot.nodes:
        return ""
    rows = "".join(_node_row(n) for n in snapshot.nodes)
    return (
        '<section id="nodes"><h2>Nodes</h2><table class="nodes"><thead><tr><th>node</th>'
        "<th>role</th><th>state</th><th>replicas</th><th>address</th><th>detail</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></section>"
    )


# --- the page ------------------------------------------------------------------------------


def live(snapshot: Snapshot, *, actions: bool) -> str:
    """The part of the page that follows the daemon (replaced when its revision changes)."""
    return (
        source_bar(snapshot, actions)
        + applications(snapshot)
        + nodes(snapshot)
        + timeline(snapshot, actions)
        + events(snapshot)
    )


def page(
    snapshot: Snapshot, live_html: str, *, rev: str, actions: bool, title: str, poll_ms: int
) -> str:
    controls = (
        '<form id="token-form" autocomplete="off"><label for="token">API token</label> '
        '<input id="token" name="token" type="password" placeholder="for pin, unpin, rollback">'
        ' <button type="submit">Use for this tab</button> <span id="token-state"></span></form>'
        if actions
        else '<p class="off">Pin, unpin and rollback are off: start the reconciler with '
        "<code>--api-token-file FILE</code> to turn them on.</p>"
    )
    loop = snapshot.loop
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/dashboard.css"></head>'
        f'<body data-rev="{rev}" data-actions="{"on" if actions else "off"}" '
        f'data-poll-ms="{poll_ms}">'
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="pass">last pass <span id="last-pass">{_when(loop.last_pass_at)}</span>'
        ' <span id="conn" class="chip ok">live</span></p></header>'
        f'<div id="controls">{controls}<p id="notice" role="status" aria-live="polite"></p></div>'
        f'<main id="live">{live_html}</main>'
        '<footer>JSON: <a href="/status">/status</a> <a href="/history">/history</a> '
        '<a href="/dashboard.json">/dashboard.json</a> <a href="/metrics">/metrics</a> '
        '<a href="/openapi.json">/openapi.json</a></footer>'
        '<script src="/dashboard.js"></script></body></html>'
    )
