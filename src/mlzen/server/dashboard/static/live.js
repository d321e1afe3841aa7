// Live updates without a page reload, by polling JSON (run page) or HTML rows (runs page).
// No framework, no build step: the server renders everything; this only swaps states.
(function () {
  "use strict";
  var INTERVAL = 1500;

  function poll(url, handle, accept) {
    var stopped = false;
    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: accept } })
        .then(function (response) {
          if (response.status === 401) { stopped = true; return null; }
          if (!response.ok) { return null; }
          return accept === "application/json" ? response.json() : response.text();
        })
        .then(function (data) { if (data !== null && handle(data) === false) { stopped = true; } })
        .catch(function () { /* the server may be restarting: try again */ })
        .then(function () { if (!stopped) { window.setTimeout(tick, INTERVAL); } });
    }
    window.setTimeout(tick, INTERVAL);
  }

  function setStatus(element, status) {
    element.setAttribute("data-status", status);
    element.querySelectorAll(".status").forEach(function (badge) {
      badge.setAttribute("data-status", status);
      badge.textContent = status.replace("_", " ");
    });
  }

  // The run page: the run's status badge, its duration and every step's node and row.
  function runPage(main) {
    poll(main.getAttribute("data-live-run"), function (data) {
      document.querySelectorAll("[data-run-status]").forEach(function (badge) {
        badge.setAttribute("data-status", data.status);
        badge.textContent = data.status;
      });
      document.querySelectorAll("[data-run-duration]").forEach(function (cell) { cell.textContent = data.duration; });
      document.querySelectorAll("[data-run-ended]").forEach(function (cell) { cell.textContent = data.ended_at; });
      document.querySelectorAll("#run-dag .dag-node").forEach(function (node) {
        var step = data.steps[node.getAttribute("data-node")];
        var status = step ? step.status : data.pending;
        node.setAttribute("data-status", status);
        var detail = node.querySelector(".dag-detail");
        if (detail) { detail.textContent = status.replace("_", " "); }
      });
      document.querySelectorAll("tr[data-step]").forEach(function (row) {
        var step = data.steps[row.getAttribute("data-step")];
        setStatus(row, step ? step.status : data.pending);
        if (!step) { return; }
        row.querySelectorAll("[data-step-field]").forEach(function (cell) {
          cell.textContent = String(step[cell.getAttribute("data-step-field")]);
        });
        var outputs = row.querySelector("[data-step-outputs]");
        if (outputs && outputs.children.length !== step.outputs.length) {
          outputs.textContent = "";
          step.outputs.forEach(function (output, index) {
            if (index > 0) { outputs.appendChild(document.createTextNode(", ")); }
            var link = document.createElement("a");
            link.href = output.href;
            link.title = "output " + output.name;
            link.textContent = output.label;
            outputs.appendChild(link);
          });
        }
      });
      return data.status === "running";
    }, "application/json");
  }

  // A step page of a step still waiting or running: reload once its status changes,
  // so its logs, outputs and cache explanation appear.
  function stepPage(main) {
    var id = main.getAttribute("data-step-id");
    var shown = main.getAttribute("data-step-status");
    poll(main.getAttribute("data-live-step"), function (data) {
      var step = data.steps[id];
      var status = step ? step.status : data.pending;
      if (status !== shown) { window.location.reload(); return false; }
      return true;
    }, "application/json");
  }

  // The runs page: swap in fresh rows, keeping the runs ticked for comparison.
  function runsPage(body) {
    poll(body.getAttribute("data-live-rows"), function (html) {
      var ticked = {};
      body.querySelectorAll("input[name=run]:checked").forEach(function (box) { ticked[box.value] = true; });
      body.innerHTML = html;
      body.querySelectorAll("input[name=run]").forEach(function (box) { box.checked = !!ticked[box.value]; });
      return true;
    }, "text/html");
  }

  document.addEventListener("DOMContentLoaded", function () {
    var main = document.querySelector("main");
    if (main && main.hasAttribute("data-live-run")) { runPage(main); }
    if (main && main.hasAttribute("data-live-step")) { stepPage(main); }
    var rows = document.getElementById("run-rows");
    if (rows) { runsPage(rows); }
  });
})();
