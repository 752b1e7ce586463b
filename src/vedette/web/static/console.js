// Vedette console: live alert queue (server-sent events), bulk selection, keyboard shortcuts,
// retro-hunt progress (polled JSON), wall-screen refresh.
// Served from the centre itself (CSP script-src 'self'); no library, no build step.
// Every value from the server is inserted with textContent, never as HTML.
"use strict";

(function () {
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function typing(target) {
    const tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function alertRow(alert, selectLabel) {
    const row = el("tr");
    row.dataset.id = String(alert.id);
    row.className = "fresh";
    const pick = el("td");
    const box = el("input");
    box.type = "checkbox";
    box.name = "ids";
    box.value = String(alert.id);
    box.setAttribute("aria-label", selectLabel.replace("%s", String(alert.id)));
    pick.appendChild(box);
    row.appendChild(pick);
    const level = el("td");
    level.appendChild(el("span", "level level-" + alert.level, alert.level_label));
    row.appendChild(level);
    const title = el("td");
    const link = el("a", "", alert.rule_title);
    link.href = "/alerts/" + encodeURIComponent(String(alert.id));
    title.appendChild(link);
    row.appendChild(title);
    row.appendChild(el("td", "", alert.host || "—"));
    row.appendChild(el("td", "", alert.unit));
    row.appendChild(el("td", "", alert.count));
    row.appendChild(el("td", "", alert.last_seen));
    const status = el("td");
    status.appendChild(el("span", "status status-" + alert.status, alert.status_label));
    row.appendChild(status);
    return row;
  }

  function liveQueue() {
    const live = document.getElementById("live");
    const table = document.getElementById("queue");
    if (!live || !table || !window.EventSource) return;
    const body = table.tBodies[0];
    const selectLabel = live.dataset.selectLabel || "Select alert %s";
    const url = live.dataset.stream + "?after=" + encodeURIComponent(live.dataset.after || "0");
    const source = new EventSource(url);
    source.addEventListener("alert", function (event) {
      let alert;
      try {
        alert = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (body.querySelector('tr[data-id="' + String(Number(alert.id)) + '"]')) return;
      const empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      body.insertBefore(alertRow(alert, selectLabel), body.firstChild);
      live.textContent = (live.dataset.newLabel || "New alert: %s").replace("%s", alert.rule_title);
    });
  }

  function selectAll() {
    const all = document.getElementById("select-all");
    if (!all) return;
    all.addEventListener("change", function () {
      document.querySelectorAll('#queue input[name="ids"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  function closeNeedsReason() {
    const form = document.getElementById("bulk");
    if (!form) return;
    form.addEventListener("submit", function (event) {
      const action = event.submitter && event.submitter.value;
      const reason = document.getElementById("b-reason");
      if (action === "close" && reason && !reason.value) {
        event.preventDefault();
        reason.focus();
      }
    });
  }

  function shortcuts() {
    const table = document.getElementById("queue");
    if (!table) return;
    let cursor = -1;
    function rows() {
      return Array.prototype.slice.call(table.tBodies[0].querySelectorAll("tr[data-id]"));
    }
    function move(step) {
      const all = rows();
      if (!all.length) return;
      cursor = Math.max(0, Math.min(all.length - 1, cursor + step));
      all.forEach(function (row) { row.classList.remove("cursor"); });
      all[cursor].classList.add("cursor");
      const link = all[cursor].querySelector("a");
      if (link) link.focus();
    }
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      const current = rows()[cursor];
      const press = function (id) {
        const button = document.getElementById(id);
        if (button) button.click();
      };
      switch (event.key) {
        case "j": move(1); break;
        case "k": move(-1); break;
        case "x":
          if (current) {
            const box = current.querySelector('input[name="ids"]');
            if (box) box.checked = !box.checked;
          }
          break;
        case "a": press("do-ack"); break;
        case "c": {
          const reason = document.getElementById("b-reason");
          if (reason) reason.focus();
          break;
        }
        case "o":
          if (current) {
            const link = current.querySelector("a");
            if (link) link.click();
          }
          break;
        case "/": {
          const search = document.getElementById("f-q");
          if (search) { event.preventDefault(); search.focus(); }
          break;
        }
        case "r": window.location.reload(); break;
        default: return;
      }
    });
  }

  // Wall screen: fetch the page again and swap its main content in place (no reload, no
  // flash, no click needed); the server renders and escapes it as for any page view.
  function wallRefresh() {
    const main = document.getElementById("main");
    if (!document.body.classList.contains("wall") || !main) return;
    const seconds = Number(main.dataset.refresh || "30");
    window.setInterval(function () {
      refreshMain().catch(function () { /* keep showing the last picture; try again next time */ });
    }, seconds * 1000);
  }

  // Swap the page's main content for a fresh copy from the server (rendered and escaped as for
  // any page view): no reload, no flash.
  function refreshMain() {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
        const current = document.getElementById("main");
        if (fresh && current) current.replaceWith(document.importNode(fresh, true));
      });
  }

  // Retro-hunts: poll the progress of the unfinished jobs shown (JSON rows in the user's
  // language) and update their cells in place until every one is finished.
  const JOB_FIELDS = ["units", "days", "events", "hits", "alerts", "error"];

  function retroHuntProgress() {
    const table = document.getElementById("retrohunts");
    if (!table || !window.fetch) return;
    const every = Math.max(500, Number(table.dataset.every || "2000"));
    const live = document.getElementById("jobs-live");
    function pending() {
      return Array.prototype.slice.call(table.querySelectorAll('tr[data-job][data-finished="0"]'));
    }
    function update(row, job) {
      const state = row.querySelector('[data-field="status"]');
      if (state) {
        state.className = "status status-" + String(job.status).replace(/[^a-z_]/g, "");
        state.textContent = String(job.status_label);
      }
      JOB_FIELDS.forEach(function (name) {
        const cell = row.querySelector('[data-field="' + name + '"]');
        if (cell) cell.textContent = String(job[name] === undefined || job[name] === null ? "" : job[name]);
      });
      const bar = row.querySelector("progress");
      if (bar) bar.value = Number(job.percent) || 0;
      if (!job.finished) return false;
      row.dataset.finished = "1";
      const cancel = row.querySelector("form.cancel");
      if (cancel) cancel.remove();
      if (live) {
        live.textContent = (table.dataset.doneLabel || "%s: %t")
          .replace("%s", String(job.id)).replace("%t", String(job.status_label));
      }
      return true;
    }
    function poll() {
      const rows = pending();
      if (!rows.length) return;
      const ids = rows.map(function (row) { return row.dataset.job; }).join(",");
      fetch(table.dataset.poll + "?ids=" + encodeURIComponent(ids),
            { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (answer) { return answer.ok ? answer.json() : Promise.reject(answer.status); })
        .then(function (data) {
          let finished = false;
          (data.items || []).forEach(function (job) {
            const row = table.querySelector('tr[data-job="' + String(Number(job.id)) + '"]');
            if (row && update(row, job)) finished = true;
          });
          // A job page shows the alerts a finished job raised: fetch it again in place.
          if (finished && table.dataset.refresh) {
            return refreshMain().then(retroHuntProgress);
          }
          window.setTimeout(poll, every);
          return null;
        })
        .catch(function () { window.setTimeout(poll, every * 2); });
    }
    if (pending().length) window.setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    retroHuntProgress();
    wallRefresh();
    liveQueue();
    selectAll();
    closeNeedsReason();
    shortcuts();
  });
})();
