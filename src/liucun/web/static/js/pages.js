/* liucun dashboard pages: what each page fetches from the admin API and which chart draws it. */
(function () {
  "use strict";
  const D = window.Dash;
  const C = window.LiucunCharts;
  const { t, fmt, ctx, days, api, appPath, query, metric, el } = D;

  const $ = (sel) => document.querySelector(sel);
  const $$ = (sel) => Array.from(document.querySelectorAll(sel));

  /* The app's latest day with data: the end of every default range. */
  let lastDayPromise = null;
  function lastDay() {
    if (!lastDayPromise) lastDayPromise = metric("mau-report").then((r) => r.last_day);
    return lastDayPromise;
  }

  function kpi(container, label, value, sub, state) {
    container.append(
      el("div", { class: "kpi" + (state ? " " + state : ""), "data-kpi": label }, [
        el("div", { class: "kpi-label", text: label }),
        el("div", { class: "kpi-value", text: value }),
        sub ? el("div", { class: "kpi-sub", text: sub }) : null,
      ])
    );
  }

  function statusClass(status) {
    if (status === "within" || status === "ok") return "good";
    if (status === "below" || status === "above") return "bad";
    return "unknown";
  }

  function statusText(status) {
    return t(statusClass(status) === "good" ? "status.ok" : statusClass(status) === "bad" ? "status.off" : "status.unknown");
  }

  function busyButton(button, work) {
    return async (...args) => {
      button.disabled = true;
      button.classList.add("busy");
      try {
        return await work(...args);
      } finally {
        button.disabled = false;
        button.classList.remove("busy");
      }
    };
  }

  // --------------------------------------------------------------------------- overview

  async function monthReports(last) {
    // the newest month and the three before it, each counted up to its end (or the last day)
    const ends = [last];
    for (let i = 0; i < 3; i++) ends.push(days.monthBefore(ends[ends.length - 1]));
    const reports = await Promise.all(ends.map((to) => metric("mau-report", { to }).catch(() => null)));
    return reports.reverse();
  }

  async function overview() {
    const last = await lastDay();
    const reports = await monthReports(last);
    const newest = reports[reports.length - 1];
    // a month with under a week counted says little yet: the KPIs show the month before it
    const shown = newest && newest.complete === false && Number(newest.last_day.slice(8, 10)) < 7 && reports[reports.length - 2] ? reports[reports.length - 2] : newest;
    const cards = $("#kpis");
    cards.replaceChildren();
    $("#kpi-month").textContent = fmt.month(shown.month) + (shown.complete ? "" : " " + t("to_date", { day: fmt.date(shown.last_day) }));
    kpi(cards, t("kpi.mau"), fmt.int(shown.mau));
    kpi(cards, t("kpi.mean_uv"), fmt.num(shown.mean_daily_uv, 1));
    kpi(cards, t("kpi.ratio"), shown.mau_to_daily_uv == null ? "–" : t("x_times", { value: fmt.num(shown.mau_to_daily_uv, 1) }), t("kpi.ratio_target") + " · " + statusText(shown.mau_ratio_status), statusClass(shown.mau_ratio_status));
    kpi(cards, t("kpi.revisits"), fmt.num(shown.weekly_revisits, 2), t("kpi.revisits_target") + " · " + statusText(shown.revisits_status), statusClass(shown.revisits_status));
    kpi(cards, t("kpi.churn"), fmt.pct(shown.churn_rate), t("kpi.churn_target") + " · " + statusText(shown.churn_status), statusClass(shown.churn_status));
    const retention = $("#kpis-retention");
    metric("day-retention", { from: days.add(last, -59), to: last }).then((ds) => {
      retention.replaceChildren();
      ds.forEach((d) => kpi(retention, t("kpi.d", { day: d.day }), fmt.pct(d.rate), t("kpi.d_over", { cohorts: fmt.int(d.cohorts), users: fmt.int(d.cohort_users) })));
    });

    const current = metric("active", { from: days.add(last, -29), to: last });
    const previous = metric("active", { from: days.add(last, -59), to: days.add(last, -30) });
    new D.Panel("dau").run(async () => C.trendVsPrevious((await current).days, (await previous).days, "dau", ctx));
    new D.Panel("mau").run(async () => C.trendVsPrevious((await current).days, (await previous).days, "mau", ctx));
    new D.Panel("ratio").run(async () => C.monthsAgainstTarget(reports, "mau_to_daily_uv", { low: 15, high: 20 }, ctx));
    new D.Panel("revisits").run(async () => C.monthsAgainstTarget(reports, "weekly_revisits", { low: 2 }, ctx));
    new D.Panel("churn").run(async () => C.monthsAgainstTarget(reports, "churn_rate", { low: 0.5 }, ctx, true));
    alerts();
  }

  async function alerts() {
    const box = $("#alerts");
    const list = $("#alert-list");
    list.replaceChildren(el("p", { class: "status busy", text: t("loading") }));
    const rows = await api(appPath + "/alerts" + query({ status: "open", limit: 50 }));
    const lang = D.cfg.lang;
    list.replaceChildren();
    if (!rows.length) list.append(el("p", { class: "status empty", text: t("alerts.none") }));
    for (const a of rows) {
      const ack = el("button", { type: "button", class: "small", text: t("alerts.ack") });
      ack.addEventListener("click", busyButton(ack, async () => {
        await api(`${appPath}/alerts/${a.id}/ack`, { method: "POST" });
        alerts();
      }));
      list.append(
        el("article", { class: "alert " + a.severity, "data-alert": a.kind }, [
          el("header", {}, [el("span", { class: "badge " + a.severity, text: t("severity." + a.severity) }), el("strong", { text: a.title[lang] }), el("span", { class: "muted", text: a.period }), ack]),
          el("p", {}, [el("span", { class: "muted", text: t("alerts.action") + ":" }), a.action[lang]]),
        ])
      );
    }
    box.dataset.state = "drawn";
  }

  function overviewInit() {
    const check = $("#alerts-check");
    check.addEventListener("click", busyButton(check, async () => {
      try {
        await api(appPath + "/alerts/check", { method: "POST" });
      } finally {
        alerts();
      }
    }));
    overview().catch((e) => ($("#kpis").textContent = t("error", { message: e.message })));
  }

  // --------------------------------------------------------------------------- retention

  const RANGE = { day: 44, week: 7 * 12 - 1, month: 200 };
  const INTERVALS = { day: 31, week: 12, month: 7 };

  async function eventOptions(select, withAny) {
    const features = await metric("features", { period: "month", limit: 50 }).catch(() => []);
    const names = [...new Set(features.filter((f) => f.kind === "event").map((f) => f.feature))].sort();
    const opts = [["visit", t("retention.visit")]];
    if (withAny) opts.push(["any", t("retention.any")]);
    opts.push(["page_view", "page_view"]);
    names.forEach((n) => opts.push([n, n]));
    select.replaceChildren(...opts.map(([v, label]) => el("option", { value: v, text: label })));
    return names;
  }

  // what the name input takes after each prefix: an event property's key, a profile attribute
  const NAMED_BREAKDOWNS = {
    property: { prefix: "properties.", pattern: "[A-Za-z0-9_$\\-]{1,64}", placeholder: "channel" },
    profile: { prefix: "profile.", pattern: "[^\\s,]{1,64}", placeholder: "city" },
  };

  /* The breakdown the controls with id prefix `p` ask for: "", a column, properties.KEY or
     profile.NAME ("" until the name is valid). */
  function chosenBreakdown(p) {
    const choice = $(`#${p}-breakdown`).value;
    const named = NAMED_BREAKDOWNS[choice];
    $(`#${p}-property-label`).hidden = !named;
    if (!named) return choice;
    const input = $(`#${p}-property`);
    $(`#${p}-prefix`).textContent = named.prefix;
    input.pattern = named.pattern;
    input.placeholder = named.placeholder;
    return input.value && input.checkValidity() ? named.prefix + input.value : "";
  }

  /* Set the controls with id prefix `p` to `breakdown` (a saved funnel's). */
  function showBreakdown(p, breakdown) {
    const named = Object.entries(NAMED_BREAKDOWNS).find(([, n]) => (breakdown || "").startsWith(n.prefix));
    $(`#${p}-breakdown`).value = named ? named[0] : breakdown || "";
    $(`#${p}-property`).value = named ? breakdown.slice(named[1].prefix.length) : "";
    chosenBreakdown(p);
  }

  let matrixPanel, curvesPanel, retentionGroups = null;

  function drawGroupMatrix() {
    const period = $("#r-period").value;
    const group = retentionGroups[Number($("#r-group").value) || 0];
    matrixPanel.run(async () => C.retentionMatrix(group ? group.cohorts : [], ctx, period));
  }

  async function retention() {
    const last = await lastDay();
    const period = $("#r-period").value;
    const type = $("#r-type").value;
    const event = $("#r-event").value;
    const cumulative = $("#r-cumulative").checked;
    const breakdown = chosenBreakdown("r");
    const cards = $("#kpis-retention");
    metric("day-retention", { from: days.add(last, -59), to: last, event }).then((ds) => {
      cards.replaceChildren();
      ds.forEach((d) => kpi(cards, t("kpi.d", { day: d.day }), fmt.pct(d.rate), t("kpi.d_over", { cohorts: fmt.int(d.cohorts), users: fmt.int(d.cohort_users) })));
    });
    const params = { period, type, event, cumulative: cumulative || undefined, intervals: INTERVALS[period], from: days.add(last, -RANGE[period]), to: last };
    // with a breakdown: the 8 largest groups, one curve each, and the matrix of the chosen one
    const data = metric("retention", breakdown ? { ...params, breakdown, limit: 8 } : params);
    const groups = data.then((d) => (breakdown ? d : [{ value: t("retention.all"), cohorts: d }]));
    curvesPanel.run(async () => C.retentionCurves(await groups, ctx, period));
    matrixPanel.run(async () => {
      retentionGroups = await groups;
      const select = $("#r-group");
      select.replaceChildren(...retentionGroups.map((g, i) => el("option", { value: String(i), text: g.value === null ? t("retention.no_value") : String(g.value) })));
      $("#r-group-label").hidden = !breakdown;
      return C.retentionMatrix(retentionGroups.length ? retentionGroups[0].cohorts : [], ctx, period);
    });
  }

  function retentionInit() {
    matrixPanel = new D.Panel("matrix");
    curvesPanel = new D.Panel("curves");
    eventOptions($("#r-event"), true).finally(retention);
    $$("#retention-controls select, #retention-controls input").forEach((c) => {
      if (c.id !== "r-group") c.addEventListener("change", retention);
    });
    $("#r-group").addEventListener("change", drawGroupMatrix);
  }

  // --------------------------------------------------------------------------- lifecycle

  async function lifecycleInit() {
    const last = await lastDay();
    new D.Panel("buckets").run(async () => C.lifecycleBuckets(await metric("lifecycle", { period: "week", from: days.add(last, -83), to: last }), ctx));
    const labelsPanel = new D.Panel("labels");
    const loadLabels = () => labelsPanel.run(async () => C.labelCounts(await api(appPath + "/lifecycle/counts" + query({ from: days.add(last, -29), to: last })), ctx), t("lifecycle.no_labels"));
    loadLabels();
    const labelNow = $("#label-now");
    labelNow.addEventListener("click", busyButton(labelNow, async () => {
      labelsPanel.busy();
      try {
        await api(appPath + "/lifecycle/label" + query({ from: days.add(last, -29), to: last }), { method: "POST" });
      } catch (e) {
        labelsPanel.fail(e);
        return;
      }
      await loadLabels();
      loadUsers();
    }));

    const riskPanel = new D.Panel("risk");
    const loadRisk = () =>
      riskPanel.run(async () => {
        const dist = await api(appPath + "/churn/distribution" + query({ bins: 10 }));
        $("#risk-note").textContent = dist.persons ? t("lifecycle.high_risk", { threshold: fmt.num(dist.high_risk_threshold, 2), count: fmt.int(dist.high_risk) }) : "";
        return C.riskDistribution(dist, ctx);
      }, t("lifecycle.no_scores"));
    loadRisk();
    const scoreNow = $("#score-now");
    scoreNow.addEventListener("click", busyButton(scoreNow, async () => {
      riskPanel.busy();
      try {
        await api(appPath + "/churn/train", { method: "POST", body: {} });
        await api(appPath + "/churn/score", { method: "POST", body: {} });
      } catch (e) {
        riskPanel.fail(e);
        return;
      }
      loadRisk();
    }));

    const users = $("#users");
    async function loadUsers() {
      const label = $("#u-label").value;
      users.replaceChildren(el("p", { class: "status busy", text: t("loading") }));
      try {
        const rows = await api(appPath + "/lifecycle/users" + query({ label: label || undefined, limit: 200 }));
        const table = {
          columns: [t("lifecycle.person"), t("lifecycle.filter"), t("lifecycle.since"), t("lifecycle.previous"), t("lifecycle.signals")],
          rows: rows.map((r) => [r.person_id, t("label." + r.label), r.day, r.previous ? t("label." + r.previous) : "", r.signals.join(", ")]),
        };
        users.replaceChildren(rows.length ? D.tableEl(table) : el("p", { class: "status empty", text: t("lifecycle.no_labels") }));
        users.dataset.rows = rows.length;
      } catch (e) {
        users.replaceChildren(el("p", { class: "status error", text: t("error", { message: e.message }) }));
      }
    }
    $("#u-label").addEventListener("change", loadUsers);
    $("#winback").setAttribute("href", appPath + "/winback" + query({ format: "csv", limit: 100000 }));
    $("#winback").setAttribute("download", `${D.cfg.app.name}-winback.csv`);
    loadUsers();
  }

  // --------------------------------------------------------------------------- funnels

  function stepRow(value) {
    const input = el("input", { type: "text", class: "step", list: "event-names", value: value || "", placeholder: t("funnel.hint"), "aria-label": t("funnel.event") });
    const remove = el("button", { type: "button", class: "small link", text: t("funnel.remove"), onclick: () => row.remove() });
    const row = el("li", {}, [input, remove]);
    return row;
  }

  async function funnelsInit() {
    const last = await lastDay();
    const list = $("#steps");
    const names = await metric("features", { period: "month", limit: 50 }).catch(() => []);
    const events = [...new Set(names.filter((f) => f.kind === "event").map((f) => f.feature))].sort();
    const pages = [...new Set(names.filter((f) => f.kind === "page").map((f) => f.feature))];
    const choices = ["app_open", "page_view", ...pages.map((p) => `page_view[page=${p}]`), ...events];
    $("#event-names").replaceChildren(...choices.map((c) => el("option", { value: c })));
    const defaults = ["app_open", pages.length > 2 ? `page_view[page=${pages[2]}]` : "page_view", events.includes("order_paid") ? "order_paid" : events[0] || "page_view"];
    defaults.forEach((s) => list.append(stepRow(s)));
    $("#add-step").addEventListener("click", () => list.append(stepRow("")));

    const funnelPanel = new D.Panel("funnel");
    const build = () => {
      const steps = $$("#steps input.step").map((i) => i.value.trim()).filter(Boolean);
      const breakdown = chosenBreakdown("f");
      const params = { steps: steps.join(","), window: $("#f-window").value, order: $("#f-order").value, from: days.add(last, -29), to: last };
      // with a breakdown: the 8 largest groups side by side
      funnelPanel.run(async () => (breakdown ? C.funnelGroups((await metric("funnel", { ...params, breakdown })).slice(0, 8), ctx) : C.funnelSteps(await metric("funnel", params), ctx)));
    };
    $("#build").addEventListener("click", build);
    $("#f-breakdown").addEventListener("change", () => chosenBreakdown("f"));
    build();

    api(appPath + "/funnels").then((saved) => {
      const box = $("#saved");
      box.replaceChildren(
        ...saved.map((f) =>
          el("button", {
            type: "button",
            class: "small",
            text: f.name,
            onclick: () => {
              list.replaceChildren(...f.steps.split(",").map((s) => stepRow(s.trim())));
              $("#f-window").value = f.window;
              $("#f-order").value = f.order;
              showBreakdown("f", f.breakdown);
              build();
            },
          })
        )
      );
    });

    new D.Panel("exits").run(async () => C.exitRates(await metric("exits", { limit: 15, from: days.add(last, -29), to: last }), ctx));
    new D.Panel("paths").run(async () => C.pathsSankey(await metric("paths", { limit: 40, from: days.add(last, -29), to: last }), ctx));
  }

  // --------------------------------------------------------------------------- heatmap

  async function heatmapInit() {
    const last = await lastDay();
    const exits = await metric("exits", { limit: 50, from: days.add(last, -29), to: last }).catch(() => []);
    const select = $("#h-page");
    select.replaceChildren(...exits.map((p) => el("option", { value: p.page, text: p.page })));
    const panel = new D.Panel("heatmap");
    const draw = () => {
      if (!select.value) return panel.empty();
      panel.run(async () => {
        const h = await metric("heatmap", { page: select.value, grid: $("#h-grid").value, from: days.add(last, -29), to: last });
        $("#h-note").textContent = t("heatmap.taps", { taps: fmt.int(h.taps), skipped: fmt.int(h.skipped) });
        return C.tapHeatmap(h, ctx);
      });
    };
    select.addEventListener("change", draw);
    $("#h-grid").addEventListener("change", draw);
    draw();
  }

  // --------------------------------------------------------------------------- performance

  async function performanceInit() {
    const last = await lastDay();
    const perf = metric("performance", { from: days.add(last, -29), to: last, limit: 20 });
    perf.then((p) => {
      const cards = $("#kpis");
      cards.replaceChildren();
      const o = p.overall;
      kpi(cards, t("perf.within"), fmt.pct(o.within_target), `≤ ${fmt.int(p.target_ms)} ms`, o.within_target == null ? "unknown" : o.within_target >= 0.8 ? "good" : "bad");
      kpi(cards, t("perf.median"), `${fmt.int(o.median_ms)} ms`);
      kpi(cards, t("perf.p90"), `${fmt.int(o.p90_ms)} ms`);
      kpi(cards, t("perf.loads"), fmt.int(o.loads));
    });
    new D.Panel("distribution").run(async () => C.loadDistribution(await perf, ctx));
    new D.Panel("curve").run(async () => C.loadChurnCurve(await perf, ctx));
    new D.Panel("platforms").run(async () => C.withinByGroup((await perf).by_platform, (await perf).target_ms, ctx));
  }

  // --------------------------------------------------------------------------- loyalty

  function loyaltyInit() {
    const overview = api(appPath + "/loyalty/overview");
    overview.then((o) => ($("#ladder-title").textContent = t("loyalty.ladder", { month: fmt.month(o.ladder.month) })));
    new D.Panel("points").run(async () => C.pointsDaily(await overview, ctx));
    new D.Panel("levels").run(async () => C.levels((await overview).levels, ctx));
    new D.Panel("checkins").run(async () => C.checkinsDaily(await overview, ctx));
    new D.Panel("ladder").run(async () => C.ladderSteps((await overview).ladder, ctx));
    new D.Panel("coupons").run(async () => C.couponFunnel((await overview).coupons, ctx));
  }

  // --------------------------------------------------------------------------- campaigns

  function campaignsInit() {
    const panel = new D.Panel("campaigns");
    panel.run(async () => {
      const campaigns = await api(appPath + "/campaigns");
      if (!campaigns.length) return null;
      const rows = await Promise.all(
        campaigns.map(async (c) => ({ campaign: c, results: await api(`${appPath}/campaigns/${encodeURIComponent(c.campaign_id)}/results`).catch(() => null) }))
      );
      return C.campaignLifts(rows, ctx);
    }, t("campaigns.none"));
  }

  // --------------------------------------------------------------------------- playbook

  function playbookInit() {
    const editor = $("#pb-text");
    const gutter = $("#pb-gutter");
    const problems = $("#pb-problems");
    const result = $("#pb-result");
    const save = $("#pb-save");
    let live = null;
    let dryRunText = null; // the text the last successful dry run checked

    const lineCount = () => editor.value.split("\n").length;
    function drawGutter(marks) {
      const bad = new Map((marks || []).filter((p) => p.line).map((p) => [p.line, p.message]));
      gutter.replaceChildren(
        ...Array.from({ length: lineCount() }, (_, i) => el("div", { class: bad.has(i + 1) ? "bad" : null, title: bad.get(i + 1) || null, text: String(i + 1) }))
      );
      gutter.scrollTop = editor.scrollTop;
    }
    editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));
    editor.addEventListener("input", () => {
      drawGutter();
      save.disabled = editor.value !== dryRunText;
      $("#pb-save-hint").hidden = !save.disabled;
    });

    function selectLine(line) {
      const lines = editor.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      editor.focus();
      editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
      editor.scrollTop = Math.max(0, (line - 4) * parseFloat(getComputedStyle(editor).lineHeight));
    }

    function showProblems(list) {
      drawGutter(list);
      problems.hidden = !list.length;
      problems.replaceChildren(
        el("p", { class: "status error", text: t("playbook.invalid", { count: list.length }) }),
        el(
          "ul",
          {},
          list.map((p) =>
            el("li", { "data-line": p.line || "" }, [
              el("button", { type: "button", class: "link", text: p.line ? t("playbook.line", { line: p.line }) : "—", onclick: () => p.line && selectLine(p.line) }),
              el("code", { text: p.path }),
              " ",
              p.message,
            ])
          )
        )
      );
    }

    function problemsOf(err) {
      return err.status === 422 && err.data && Array.isArray(err.data.detail) ? err.data.detail : null;
    }

    async function load() {
      live = await api(appPath + "/playbook");
      editor.value = live.text;
      $("#pb-revision").textContent = t("playbook.revision", { revision: live.revision });
      dryRunText = null;
      save.disabled = true;
      drawGutter();
    }

    function changesTable(changes) {
      if (!changes.length) return el("p", { class: "status empty", text: t("playbook.no_changes") });
      return D.tableEl({
        columns: [t("playbook.path"), t("playbook.old"), t("playbook.new")],
        rows: changes.map((c) => [c.path, JSON.stringify(c.old), JSON.stringify(c.new)]),
      });
    }

    const validate = $("#pb-validate");
    validate.addEventListener("click", busyButton(validate, async () => {
      result.replaceChildren();
      try {
        const r = await api(appPath + "/playbook/validate", { method: "POST", body: { text: editor.value } });
        showProblems([]);
        result.replaceChildren(el("p", { class: "status ok", text: t("playbook.valid", { count: r.changes.length }) }), el("h3", { text: t("playbook.changes") }), changesTable(r.changes));
      } catch (err) {
        const list = problemsOf(err);
        if (list) showProblems(list);
        else result.replaceChildren(el("p", { class: "status error", text: t("error", { message: err.message }) }));
      }
    }));

    const labelsPanel = new D.Panel("pb-labels");
    labelsPanel.empty(" ");
    const dry = $("#pb-dry-run");
    dry.addEventListener("click", busyButton(dry, async () => {
      const text = editor.value;
      result.replaceChildren(el("p", { class: "status busy", text: t("loading") }));
      labelsPanel.busy();
      try {
        const r = await api(appPath + "/playbook/dry-run" + query({ days: 30 }), { method: "POST", body: { text } });
        showProblems([]);
        const diff = el("pre", { class: "diff" }, r.diff.split("\n").map((line) => el("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null, text: line + "\n" })));
        const alerts = r.alerts || { app: [], user: [], checked: [] }; // null: no events yet
        const alertRows = [...alerts.app.map((a) => [a.kind, a.period, a.title[D.cfg.lang], t("playbook.in." + a.in)]), ...alerts.user.map((u) => [u.kind, t("playbook.user_alerts"), fmt.int(u.persons), t("playbook.in." + u.in)])];
        result.replaceChildren(
          el("p", { class: "status ok", text: t("playbook.valid", { count: r.changes.length }) + " · " + t("playbook.changed_persons", { count: fmt.int(r.labels ? r.labels.changed : 0) }) }),
          el("h3", { text: t("playbook.changes") }),
          changesTable(r.changes),
          el("h3", { text: t("playbook.diff") }),
          r.diff ? diff : el("p", { class: "status empty", text: t("playbook.no_changes") }),
          el("h3", { text: t("playbook.alerts", { days: alerts.checked.map(fmt.shortDate).join(", ") }) }),
          alertRows.length ? D.tableEl({ columns: ["kind", t("period"), t("value"), ""], rows: alertRows }) : el("p", { class: "status empty", text: t("alerts.none") })
        );
        if (r.labels) {
          $("#pb-labels-title").textContent = t("playbook.labels", { day: fmt.date(r.labels.as_of) });
          labelsPanel.show(C.labelDryRun(r.labels, ctx));
        } else labelsPanel.empty();
        dryRunText = text;
        save.disabled = editor.value !== dryRunText;
        $("#pb-save-hint").hidden = !save.disabled;
      } catch (err) {
        labelsPanel.empty(" ");
        const list = problemsOf(err);
        if (list) {
          showProblems(list);
          result.replaceChildren();
        } else result.replaceChildren(el("p", { class: "status error", text: t("error", { message: err.message }) }));
      }
    }));

    save.addEventListener("click", busyButton(save, async () => {
      try {
        const r = await api(appPath + "/playbook", { method: "PUT", body: { text: editor.value, note: $("#pb-note").value || null } });
        const changed = r.revision !== live.revision;
        await load();
        result.replaceChildren(el("p", { class: "status ok", "data-saved": r.revision, text: changed ? t("playbook.saved", { revision: r.revision }) : t("playbook.unchanged") }));
        showProblems([]);
      } catch (err) {
        const list = problemsOf(err);
        if (list) showProblems(list);
        else result.replaceChildren(el("p", { class: "status error", text: t("error", { message: err.message }) }));
      }
    }));
    load();
  }

  const PAGES = {
    overview: overviewInit,
    retention: retentionInit,
    lifecycle: lifecycleInit,
    funnels: funnelsInit,
    heatmap: heatmapInit,
    performance: performanceInit,
    loyalty: loyaltyInit,
    campaigns: campaignsInit,
    playbook: playbookInit,
  };
  const init = PAGES[D.cfg.page];
  if (init) Promise.resolve(init()).catch((e) => console.error(e));
})();
