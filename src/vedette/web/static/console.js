// Vedette console: live alert queue (server-sent events), bulk selection, keyboard shortcuts.
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
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
        .then(function (html) {
          const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
          const current = document.getElementById("main");
          if (fresh && current) current.replaceWith(document.importNode(fresh, true));
        })
        .catch(function () { /* keep showing the last picture; try again next time */ });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    wallRefresh();
    liveQueue();
    selectAll();
    closeNeedsReason();
    shortcuts();
  });
})();
