// The dashboard's script: keeps the server-rendered page live and sends the buttons' requests.
// - every few seconds it asks /dashboard.json whether the page's revision is still current and,
//   when not, swaps in the HTML the server rendered (no templating here);
// - it shows times as "12 s ago" and replica uptimes;
// - pin, unpin and rollback carry the API token in an Authorization header; the token is kept
//   in this tab's sessionStorage, never in a cookie (a browser attaches cookies cross-site).
"use strict";
(function () {
  const body = document.body;
  const live = document.getElementById("live");
  const notice = document.getElementById("notice");
  const conn = document.getElementById("conn");
  const lastPass = document.getElementById("last-pass");
  const pollMs = Number(body.dataset.pollMs) || 2000;
  const TOKEN = "serve-reconciler:api-token";
  let rev = body.dataset.rev;
  let timer = null;

  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll("[data-ago]")) {
      const ts = Number(el.dataset.ago);
      if (!el.title) el.title = new Date(ts * 1000).toLocaleString();
      el.textContent = span(now - ts) + " ago";
    }
    for (const el of document.querySelectorAll("[data-since]")) {
      el.textContent = span(now - Number(el.dataset.since));
    }
  }

  function say(text, tone) {
    notice.textContent = text;
    notice.className = tone || "";
  }

  function setConn(ok) {
    conn.textContent = ok ? "live" : "offline";
    conn.className = "chip " + (ok ? "ok" : "bad");
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const r = await fetch("/dashboard.json?since=" + encodeURIComponent(rev), {
        cache: "no-store",
        credentials: "omit",
      });
      const j = await r.json();
      if (j.html !== undefined) {
        live.innerHTML = j.html; // rendered and escaped by the server
        rev = j.rev;
        body.dataset.rev = rev;
      }
      const t = lastPass.querySelector("time");
      if (t && j.last_pass_at) t.dataset.ago = String(j.last_pass_at);
      setConn(true);
      tick();
    } catch (e) {
      setConn(false);
    } finally {
      timer = setTimeout(poll, pollMs);
    }
  }

  function describe(j, status) {
    let text = j.message || j.error || "answered " + status;
    if (Array.isArray(j.errors) && j.errors.length) text += "\n" + j.errors.join("\n");
    return text;
  }

  async function act(method, path, payload) {
    const token = sessionStorage.getItem(TOKEN);
    if (!token) {
      say("Enter the API token first.", "bad");
      const input = document.getElementById("token");
      if (input) input.focus();
      return;
    }
    say("Working...", "busy");
    try {
      const r = await fetch(path, {
        method: method,
        credentials: "omit",
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
        body: payload ? JSON.stringify(payload) : undefined,
      });
      const j = await r.json().catch(function () { return {}; });
      if (r.status === 401) sessionStorage.removeItem(TOKEN);
      say(describe(j, r.status), r.ok ? "ok" : "bad");
    } catch (e) {
      say("The reconciler did not answer: " + e, "bad");
    }
    showToken();
    poll();
  }

  function showToken() {
    const state = document.getElementById("token-state");
    if (state) state.textContent = sessionStorage.getItem(TOKEN) ? "token set for this tab" : "";
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "pin") {
      act("POST", "/pin", { commit: button.dataset.commit, reason: "pinned from the dashboard" });
    } else if (action === "unpin") {
      act("DELETE", "/pin");
    } else if (action === "rollback") {
      act("POST", "/rollback");
    }
  });

  const form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const input = document.getElementById("token");
      const value = input.value.trim();
      if (value) sessionStorage.setItem(TOKEN, value);
      else sessionStorage.removeItem(TOKEN);
      input.value = "";
      showToken();
      say(value ? "Token kept for this tab." : "Token forgotten.", "ok");
    });
  }

  showToken();
  tick();
  setInterval(tick, 1000);
  timer = setTimeout(poll, pollMs);
})();
