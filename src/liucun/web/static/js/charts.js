/* liucun charts: pure builders from the admin API's JSON to an ECharts option and the table
 * of the same numbers. No DOM, no fetching: the dashboard (dash.js, pages.js) and the monthly
 * report can both feed them data and draw the result.
 *
 * Every builder is f(data, ctx) -> {option, table: {columns: [...], rows: [[...], ...]}} or
 * null when there is nothing to draw; ctx = {t, fmt} (messages and zh-CN/en formatters).
 */
(function (root) {
  "use strict";

  const PALETTE = ["#c23531", "#2f4554", "#61a0a8", "#d48265", "#91c7ae", "#749f83", "#ca8622", "#bda29a", "#6e7074", "#546570"];

  function base(extra) {
    return Object.assign(
      {
        color: PALETTE,
        animation: false, // charts are read, not watched; screenshots and PDFs need them drawn
        tooltip: { trigger: "axis" },
        grid: { left: 56, right: 24, top: 40, bottom: 40, containLabel: true },
      },
      extra
    );
  }

  function pctAxis(ctx) {
    return { type: "value", axisLabel: { formatter: (v) => ctx.fmt.pct(v, 0) } };
  }

  /* Daily values of this period beside the previous one, aligned by day number. */
  function trendVsPrevious(current, previous, field, ctx) {
    if (!current || !current.length) return null;
    const prev = previous || [];
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: current.map((d) => ctx.fmt.shortDate(d.day)) },
      yAxis: { type: "value" },
      series: [
        { name: ctx.t("current"), type: "line", smooth: true, showSymbol: false, data: current.map((d) => d[field]) },
        {
          name: ctx.t("previous"),
          type: "line",
          smooth: true,
          showSymbol: false,
          lineStyle: { type: "dashed" },
          data: current.map((_, i) => (prev[i] ? prev[i][field] : null)),
        },
      ],
    });
    const rows = current.map((d, i) => [d.day, d[field], prev[i] ? prev[i].day : "", prev[i] ? prev[i][field] : ""]);
    return { option, table: { columns: [ctx.t("day"), ctx.t("current"), ctx.t("day"), ctx.t("previous")], rows } };
  }

  /* One figure of monthly MAU reports against a target band [low, high] or a line (low). */
  function monthsAgainstTarget(reports, field, target, ctx, asPct) {
    const shown = reports.filter((r) => r);
    if (!shown.length) return null;
    const mark = target.high != null
      ? { markArea: { silent: true, itemStyle: { color: "rgba(145,199,174,0.25)" }, data: [[{ yAxis: target.low, name: ctx.t("band") }, { yAxis: target.high }]] } }
      : { markLine: { silent: true, symbol: "none", lineStyle: { color: "#c23531", type: "dashed" }, label: { formatter: ctx.t("line"), position: "insideEndTop" }, data: [{ yAxis: target.low }] } };
    const label = (r) => ctx.fmt.monthShort(r.month) + (r.complete ? "" : "\n" + ctx.t("to_date", { day: ctx.fmt.shortDate(r.last_day) }));
    const option = base({
      xAxis: { type: "category", data: shown.map(label), axisLabel: { interval: 0, lineHeight: 16 } },
      yAxis: asPct ? pctAxis(ctx) : { type: "value", max: (v) => Math.ceil(Math.max(v.max, target.high || target.low) * 1.15) },
      series: [
        Object.assign(
          {
            name: ctx.t("value"),
            type: "bar",
            barMaxWidth: 48,
            data: shown.map((r) => r[field]),
            label: { show: true, position: "top", formatter: (p) => (p.value == null ? "–" : asPct ? ctx.fmt.pct(p.value) : ctx.fmt.num(p.value, 2)) },
          },
          mark
        ),
      ],
    });
    const rows = shown.map((r) => [r.month.slice(0, 7), r.last_day, r[field], target.high != null ? `${target.low}–${target.high}` : target.low]);
    return { option, table: { columns: [ctx.t("month"), ctx.t("to"), ctx.t("value"), ctx.t("target")], rows } };
  }

  /* The cohort matrix as a heatmap: rate per cohort and interval; D1/D7/D30 columns marked. */
  function retentionMatrix(cohorts, ctx, period) {
    if (!cohorts || !cohorts.length) return null;
    const width = Math.max(...cohorts.map((c) => c.counts.length));
    const intervals = Array.from({ length: Math.max(width - 1, 1) }, (_, i) => i + 1);
    const marked = period === "day" ? new Set([1, 7, 30]) : new Set();
    const data = [];
    cohorts.forEach((c, y) => {
      for (let k = 1; k < c.counts.length; k++) {
        data.push([k - 1, y, c.size ? c.counts[k] / c.size : 0]);
      }
    });
    const yLabels = cohorts.map((c) => `${ctx.fmt.shortDate(c.start)} (${ctx.fmt.int(c.size)})`);
    const option = base({
      tooltip: {
        trigger: "item",
        formatter: (p) => `${yLabels[p.value[1]]}<br>${ctx.t("retention.interval", { k: p.value[0] + 1 })}: ${ctx.fmt.pct(p.value[2])}`,
      },
      grid: { left: 8, right: 16, top: 16, bottom: 64, containLabel: true },
      xAxis: {
        type: "category",
        data: intervals.map((k) => (marked.has(k) ? `D${k}` : `+${k}`)),
        splitArea: { show: true },
        axisLabel: {
          interval: 0,
          formatter: (v) => (v.startsWith("D") ? `{mark|${v}}` : v),
          rich: { mark: { color: "#c23531", fontWeight: "bold" } },
        },
      },
      yAxis: { type: "category", data: yLabels, inverse: true, splitArea: { show: true } },
      visualMap: {
        min: 0,
        max: Math.max(0.01, ...data.map((d) => d[2])),
        calculable: true,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        inRange: { color: ["#f7fbff", "#6baed6", "#08306b"] },
        formatter: (v) => ctx.fmt.pct(v, 0),
      },
      series: [
        {
          name: ctx.t("retention.matrix"),
          type: "heatmap",
          data,
          label: { show: cohorts.length <= 16 && intervals.length <= 16, formatter: (p) => ctx.fmt.pct(p.value[2], 0) },
          markArea: marked.size
            ? {
                silent: true,
                itemStyle: { color: "rgba(0,0,0,0)", borderColor: "#c23531", borderWidth: 2 },
                data: [...marked].filter((k) => k <= intervals.length).map((k) => [{ xAxis: `D${k}` }, { xAxis: `D${k}` }]),
              }
            : undefined,
        },
      ],
    });
    const columns = [ctx.t("retention.cohort"), ctx.t("retention.size"), ...intervals.map((k) => (marked.has(k) ? `D${k}` : `+${k}`))];
    const rows = cohorts.map((c) => [c.start, c.size, ...intervals.map((k) => (k < c.counts.length && c.size ? c.counts[k] / c.size : ""))]);
    return { option, table: { columns, rows } };
  }

  /* Retention curves, one per group ({value, cohorts}): at interval k, the returners of every
   * cohort old enough for k over those cohorts' members (pooled, so big cohorts weigh more). */
  function retentionCurves(groups, ctx, period) {
    const shown = (groups || []).filter((g) => g.cohorts.some((c) => c.size));
    if (!shown.length) return null;
    const width = Math.max(...shown.flatMap((g) => g.cohorts.map((c) => c.counts.length)));
    const intervals = Array.from({ length: Math.max(width - 1, 1) }, (_, i) => i + 1);
    const marked = period === "day" ? new Set([1, 7, 30]) : new Set();
    const label = (k) => (marked.has(k) ? `D${k}` : `+${k}`);
    const name = (g) => (g.value === null || g.value === undefined ? ctx.t("retention.no_value") : String(g.value));
    const pooled = (g, k) => {
      const old = g.cohorts.filter((c) => c.counts.length > k);
      const members = old.reduce((n, c) => n + c.size, 0);
      return members ? old.reduce((n, c) => n + c.counts[k], 0) / members : null;
    };
    const option = base({
      legend: { top: 4, type: "scroll" },
      tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "—" : ctx.fmt.pct(v)) },
      xAxis: { type: "category", data: intervals.map(label) },
      yAxis: pctAxis(ctx),
      series: shown.map((g) => ({ name: name(g), type: "line", showSymbol: intervals.length <= 16, data: intervals.map((k) => pooled(g, k)) })),
    });
    const columns = [ctx.t("retention.group"), ctx.t("retention.size"), ...intervals.map(label)];
    const rows = shown.map((g) => [name(g), g.cohorts.reduce((n, c) => n + c.size, 0), ...intervals.map((k) => pooled(g, k) ?? "")]);
    return { option, table: { columns, rows } };
  }

  /* Stacked bars of PostHog's lifecycle buckets; dormant drawn below zero. */
  function lifecycleBuckets(periods, ctx) {
    if (!periods || !periods.length) return null;
    const keys = ["new", "returning", "resurrecting", "dormant"];
    const colors = { new: "#91c7ae", returning: "#2f4554", resurrecting: "#61a0a8", dormant: "#c23531" };
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: periods.map((p) => ctx.fmt.shortDate(p.start)) },
      yAxis: { type: "value" },
      series: keys.map((k) => ({ name: ctx.t("bucket." + k), type: "bar", stack: "all", itemStyle: { color: colors[k] }, data: periods.map((p) => p[k]) })),
    });
    const rows = periods.map((p) => [p.start, ...keys.map((k) => p[k])]);
    return { option, table: { columns: [ctx.t("period"), ...keys.map((k) => ctx.t("bucket." + k))], rows } };
  }

  /* Persons per lifecycle label on each labelled day. */
  function labelCounts(days, ctx) {
    if (!days || !days.length) return null;
    const labels = ["new", "active", "resurrected", "silent", "churned"];
    const colors = { new: "#91c7ae", active: "#2f4554", resurrected: "#61a0a8", silent: "#ca8622", churned: "#c23531" };
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: days.map((d) => ctx.fmt.shortDate(d.day)) },
      yAxis: { type: "value" },
      series: labels.map((l) => ({ name: ctx.t("label." + l), type: "line", stack: "labels", areaStyle: { opacity: 0.6 }, showSymbol: false, itemStyle: { color: colors[l] }, data: days.map((d) => d.counts[l] || 0) })),
    });
    const rows = days.map((d) => [d.day, ...labels.map((l) => d.counts[l] || 0)]);
    return { option, table: { columns: [ctx.t("day"), ...labels.map((l) => ctx.t("label." + l))], rows } };
  }

  function riskDistribution(dist, ctx) {
    if (!dist || !dist.persons) return null;
    const names = dist.bins.map((b) => `${ctx.fmt.num(b.low, 1)}–${ctx.fmt.num(b.high, 1)}`);
    const option = base({
      xAxis: { type: "category", data: names, name: ctx.t("lifecycle.risk_band"), nameLocation: "middle", nameGap: 28 },
      yAxis: { type: "value" },
      series: [
        {
          name: ctx.t("persons"),
          type: "bar",
          data: dist.bins.map((b) => ({ value: b.persons, itemStyle: { color: b.low >= dist.high_risk_threshold - 1e-9 ? "#c23531" : "#61a0a8" } })),
        },
      ],
    });
    const rows = dist.bins.map((b) => [b.low, b.high, b.persons]);
    return { option, table: { columns: ["low", "high", ctx.t("persons")], rows } };
  }

  function funnelSteps(steps, ctx) {
    if (!steps || !steps.length) return null;
    const names = steps.map((s, i) => `${i + 1}. ${s.event}`);
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: names, axisLabel: { interval: 0, width: 140, overflow: "truncate" } },
      yAxis: [{ type: "value", name: ctx.t("persons") }, Object.assign(pctAxis(ctx), { max: 1, name: ctx.t("funnel.conversion") })],
      series: [
        {
          name: ctx.t("persons"),
          type: "bar",
          barMaxWidth: 64,
          data: steps.map((s) => s.persons),
          label: { show: true, position: "top", formatter: (p) => ctx.fmt.int(p.value) },
        },
        {
          name: ctx.t("funnel.drop_off"),
          type: "bar",
          barMaxWidth: 64,
          itemStyle: { color: "#d48265" },
          data: steps.map((s) => s.drop_off),
        },
        { name: ctx.t("funnel.conversion"), type: "line", yAxisIndex: 1, data: steps.map((s) => s.conversion), label: { show: true, formatter: (p) => ctx.fmt.pct(p.value) } },
      ],
    });
    const rows = steps.map((s, i) => [i + 1, s.event, s.persons, s.conversion, s.step_conversion, s.drop_off, s.median_seconds]);
    return {
      option,
      table: {
        columns: [ctx.t("funnel.step"), ctx.t("funnel.event"), ctx.t("persons"), ctx.t("funnel.conversion"), ctx.t("funnel.step_conversion"), ctx.t("funnel.drop_off"), ctx.t("funnel.median")],
        rows,
      },
    };
  }

  /* A funnel per breakdown group: each group's conversion from the first step, a line each. */
  function funnelGroups(groups, ctx) {
    const shown = (groups || []).filter((g) => g.steps.length && g.steps[0].persons);
    if (!shown.length) return null;
    const steps = shown[0].steps.map((s, i) => `${i + 1}. ${s.event}`);
    const name = (g) => (g.value === null || g.value === undefined ? ctx.t("retention.no_value") : String(g.value));
    const option = base({
      legend: { top: 4, type: "scroll" },
      tooltip: { trigger: "axis", valueFormatter: (v) => ctx.fmt.pct(v) },
      xAxis: { type: "category", data: steps, axisLabel: { interval: 0, width: 140, overflow: "truncate" } },
      yAxis: Object.assign(pctAxis(ctx), { max: 1, name: ctx.t("funnel.conversion") }),
      series: shown.map((g) => ({ name: name(g), type: "line", data: g.steps.map((s) => s.conversion) })),
    });
    const rows = shown.flatMap((g) => g.steps.map((s, i) => [name(g), i + 1, s.event, s.persons, s.conversion, s.step_conversion, s.drop_off, s.median_seconds]));
    return {
      option,
      table: {
        columns: [ctx.t("retention.group"), ctx.t("funnel.step"), ctx.t("funnel.event"), ctx.t("persons"), ctx.t("funnel.conversion"), ctx.t("funnel.step_conversion"), ctx.t("funnel.drop_off"), ctx.t("funnel.median")],
        rows,
      },
    };
  }

  function exitRates(pages, ctx) {
    if (!pages || !pages.length) return null;
    const shown = pages.slice().reverse(); // most viewed on top
    const option = base({
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 8, right: 56, top: 16, bottom: 24, containLabel: true },
      xAxis: Object.assign(pctAxis(ctx), { max: 1 }),
      yAxis: { type: "category", data: shown.map((p) => p.page) },
      series: [
        {
          name: ctx.t("exits.rate"),
          type: "bar",
          data: shown.map((p) => ({ value: p.exit_rate, itemStyle: { color: p.exit_rate >= 0.5 ? "#c23531" : "#61a0a8" } })),
          label: { show: true, position: "right", formatter: (p) => ctx.fmt.pct(p.value) },
          markLine: { silent: true, symbol: "none", lineStyle: { type: "dashed" }, data: [{ xAxis: 0.5 }] },
        },
      ],
    });
    const rows = pages.map((p) => [p.page, p.views, p.sessions, p.exits, p.exit_rate]);
    return { option, table: { columns: [ctx.t("exits.page"), ctx.t("exits.views"), ctx.t("exits.sessions"), ctx.t("exits.exits"), ctx.t("exits.rate")], rows } };
  }

  /* A Sankey needs a graph without cycles: links are taken most travelled first, and a link
   * that would close a loop (a user going back a page) is left out of the drawing; the table
   * lists every link. */
  function acyclic(links) {
    const out = new Map();
    const reaches = (from, to) => {
      const seen = new Set([from]);
      const stack = [from];
      while (stack.length) {
        const n = stack.pop();
        if (n === to) return true;
        for (const m of out.get(n) || []) if (!seen.has(m)) { seen.add(m); stack.push(m); }
      }
      return false;
    };
    const kept = [];
    for (const l of links) {
      if (l.source === l.target || reaches(l.target, l.source)) continue;
      if (!out.has(l.source)) out.set(l.source, []);
      out.get(l.source).push(l.target);
      kept.push(l);
    }
    return kept;
  }

  function pathsSankey(links, ctx) {
    if (!links || !links.length) return null;
    // a page is named by its path without the common "pages/" prefix, to fit the columns
    const name = (n) => (n === "$entry" ? ctx.t("paths.entry") : n === "$exit" ? ctx.t("paths.exit") : n.replace(/^pages\//, ""));
    const kept = acyclic(links);
    const nodes = [...new Set(kept.flatMap((l) => [name(l.source), name(l.target)]))].map((n) => ({ name: n }));
    const option = base({
      tooltip: { trigger: "item" },
      series: [
        {
          type: "sankey",
          data: nodes,
          links: kept.map((l) => ({ source: name(l.source), target: name(l.target), value: l.sessions })),
          emphasis: { focus: "adjacency" },
          lineStyle: { color: "gradient", curveness: 0.5 },
          nodeAlign: "left",
          nodeGap: 14,
          label: { fontSize: 11, position: "right" },
          left: 8,
          right: 110,
        },
      ],
    });
    const rows = links.map((l) => [name(l.source), name(l.target), l.sessions]);
    return { option, table: { columns: [ctx.t("paths.source"), ctx.t("paths.target"), ctx.t("exits.sessions")], rows } };
  }

  /* Taps per cell, drawn over the page as a phone screen: row 1 at the top. */
  function tapHeatmap(h, ctx) {
    if (!h || !h.taps) return null;
    const data = [];
    h.cells.forEach((row, y) => row.forEach((n, x) => data.push([x, y, n])));
    const option = base({
      tooltip: { trigger: "item", formatter: (p) => `${ctx.t("heatmap.column")} ${p.value[0] + 1}, ${ctx.t("heatmap.row")} ${p.value[1] + 1}: ${ctx.fmt.int(p.value[2])}` },
      grid: { left: 8, right: 8, top: 8, bottom: 56, containLabel: false },
      xAxis: { type: "category", data: Array.from({ length: h.columns }, (_, i) => i + 1), show: false, splitArea: { show: true } },
      yAxis: { type: "category", data: Array.from({ length: h.rows }, (_, i) => i + 1), inverse: true, show: false, splitArea: { show: true } },
      visualMap: {
        min: 0,
        max: Math.max(1, ...data.map((d) => d[2])),
        calculable: true,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        inRange: { color: ["rgba(255,255,255,0)", "#ffe08a", "#f46d43", "#a50026"] },
      },
      series: [{ name: ctx.t("heatmap.count"), type: "heatmap", data, itemStyle: { borderColor: "rgba(0,0,0,0.08)", borderWidth: 1 } }],
    });
    const rows = data.map((d) => [d[1] + 1, d[0] + 1, d[2]]);
    return { option, table: { columns: [ctx.t("heatmap.row"), ctx.t("heatmap.column"), ctx.t("heatmap.count")], rows } };
  }

  function bucketName(b, ctx) {
    return b.high_s == null ? `≥ ${b.low_s} s` : `${b.low_s}–${b.high_s} s`;
  }

  function loadDistribution(perf, ctx) {
    const buckets = perf && perf.load_and_return;
    if (!buckets || !buckets.length || !buckets.some((b) => b.visit_days)) return null;
    const option = base({
      xAxis: { type: "category", data: buckets.map((b) => bucketName(b, ctx)) },
      yAxis: { type: "value", name: ctx.t("perf.visit_days") },
      series: [
        {
          name: ctx.t("perf.visit_days"),
          type: "bar",
          data: buckets.map((b) => ({ value: b.visit_days, itemStyle: { color: b.high_s != null && b.high_s <= 2 ? "#91c7ae" : "#d48265" } })),
          label: { show: true, position: "top", formatter: (p) => ctx.fmt.int(p.value) },
        },
      ],
    });
    const rows = buckets.map((b) => [bucketName(b, ctx), b.visit_days]);
    return { option, table: { columns: [ctx.t("perf.bucket"), ctx.t("perf.visit_days")], rows } };
  }

  function loadChurnCurve(perf, ctx) {
    const buckets = (perf && perf.load_and_return) || [];
    const known = buckets.filter((b) => b.visit_days);
    if (!known.length) return null;
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: known.map((b) => bucketName(b, ctx)) },
      yAxis: pctAxis(ctx),
      series: [
        { name: ctx.t("perf.rate"), type: "line", data: known.map((b) => b.rate), label: { show: true, formatter: (p) => ctx.fmt.pct(p.value) } },
        { name: ctx.t("perf.ci_low"), type: "line", lineStyle: { type: "dashed" }, showSymbol: false, data: known.map((b) => b.ci_low) },
        { name: ctx.t("perf.ci_high"), type: "line", lineStyle: { type: "dashed" }, showSymbol: false, data: known.map((b) => b.ci_high) },
      ],
    });
    const rows = known.map((b) => [bucketName(b, ctx), b.visit_days, b.not_returned, b.rate, b.ci_low, b.ci_high]);
    return { option, table: { columns: [ctx.t("perf.bucket"), ctx.t("perf.visit_days"), ctx.t("perf.rate"), ctx.t("perf.rate"), ctx.t("perf.ci_low"), ctx.t("perf.ci_high")], rows } };
  }

  function withinByGroup(groups, target, ctx) {
    if (!groups || !groups.length) return null;
    const option = base({
      xAxis: { type: "category", data: groups.map((g) => g.group || "–") },
      yAxis: Object.assign(pctAxis(ctx), { max: 1 }),
      series: [
        {
          name: ctx.t("perf.within"),
          type: "bar",
          barMaxWidth: 56,
          data: groups.map((g) => g.within_target),
          label: { show: true, position: "top", formatter: (p) => ctx.fmt.pct(p.value) },
        },
      ],
    });
    const rows = groups.map((g) => [g.group, g.loads, g.median_ms, g.p90_ms, g.within_target]);
    return { option, table: { columns: [ctx.t("perf.group"), ctx.t("perf.loads"), ctx.t("perf.median"), ctx.t("perf.p90"), ctx.t("perf.within")], rows } };
  }

  function pointsDaily(overview, ctx) {
    const days = overview && overview.days;
    if (!days || !days.some((d) => d.issued || d.spent || d.expired || d.reversed)) return null;
    const kinds = ["issued", "spent", "expired", "reversed"];
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: days.map((d) => ctx.fmt.shortDate(d.day)) },
      yAxis: { type: "value" },
      series: kinds.map((k) => ({ name: ctx.t("loyalty." + k), type: "bar", stack: k === "issued" ? "in" : "out", data: days.map((d) => d[k]) })),
    });
    const rows = days.map((d) => [d.day, ...kinds.map((k) => d[k]), d.adjusted]);
    return { option, table: { columns: [ctx.t("day"), ...kinds.map((k) => ctx.t("loyalty." + k)), "adjusted"], rows } };
  }

  function levels(tiers, ctx) {
    if (!tiers || !tiers.some((t) => t.members)) return null;
    const label = (t) => (ctx.lang === "zh" ? t.zh || t.name : t.en || t.name);
    const option = base({
      tooltip: { trigger: "item" },
      legend: { top: 4 },
      series: [{ name: ctx.t("loyalty.members"), type: "pie", radius: ["35%", "65%"], top: 24, data: tiers.map((t) => ({ name: label(t), value: t.members })), label: { formatter: "{b}: {c} ({d}%)" } }],
    });
    const rows = tiers.map((t) => [t.name, label(t), t.min_growth, t.members]);
    return { option, table: { columns: [ctx.t("loyalty.level"), ctx.t("loyalty.level"), "min_growth", ctx.t("loyalty.members")], rows } };
  }

  function checkinsDaily(overview, ctx) {
    const days = overview && overview.days;
    if (!days || !days.some((d) => d.checkins)) return null;
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: days.map((d) => ctx.fmt.shortDate(d.day)) },
      yAxis: { type: "value" },
      series: [
        { name: ctx.t("loyalty.checkins"), type: "bar", data: days.map((d) => d.checkins - d.makeups), stack: "c" },
        { name: ctx.t("loyalty.makeups"), type: "bar", data: days.map((d) => d.makeups), stack: "c" },
      ],
    });
    const rows = days.map((d) => [d.day, d.checkins, d.makeups]);
    return { option, table: { columns: [ctx.t("day"), ctx.t("loyalty.checkins"), ctx.t("loyalty.makeups")], rows } };
  }

  /* Members per ladder progress this month, with each step's threshold marked. */
  function ladderSteps(ladder, ctx) {
    if (!ladder || !ladder.members) return null;
    const label = (s) => (ctx.lang === "zh" ? s.zh : s.en);
    const top = Math.max(...ladder.progress.map((p) => p.progress), ...ladder.steps.map((s) => s.visit));
    const by = new Map(ladder.progress.map((p) => [p.progress, p.members]));
    const xs = Array.from({ length: top }, (_, i) => i + 1);
    const option = base({
      xAxis: { type: "category", data: xs.map(String), name: ctx.t("loyalty.step"), nameLocation: "middle", nameGap: 28 },
      yAxis: { type: "value", name: ctx.t("loyalty.members") },
      series: [
        {
          name: ctx.t("loyalty.members"),
          type: "bar",
          barMaxWidth: 40,
          data: xs.map((x) => by.get(x) || 0),
          label: { show: true, position: "top" },
          markLine: {
            silent: true,
            symbol: "none",
            lineStyle: { color: "#c23531", type: "dashed" },
            label: { formatter: (p) => p.name, position: "insideEndTop" },
            data: ladder.steps.map((s) => ({ xAxis: String(s.visit), name: `${label(s)} · ${ctx.t("loyalty.reached")} ${ctx.fmt.int(s.reached)}` })),
          },
        },
      ],
    });
    const rows = ladder.steps.map((s) => [s.visit, label(s), s.reached, ladder.members]);
    return { option, table: { columns: [ctx.t("loyalty.step"), ctx.t("loyalty.step"), ctx.t("loyalty.reached"), ctx.t("loyalty.members")], rows } };
  }

  function couponFunnel(coupons, ctx) {
    if (!coupons || !coupons.issued) return null;
    const stages = ["issued", "redeemed", "locked", "unused", "expired", "void"];
    const option = base({
      tooltip: { trigger: "item" },
      series: [
        {
          name: ctx.t("loyalty.coupons"),
          type: "funnel",
          sort: "none",
          left: "10%",
          width: "80%",
          minSize: "8%",
          label: { formatter: (p) => `${p.name}: ${ctx.fmt.int(p.value)}` },
          data: [
            { name: ctx.t("coupon.issued"), value: coupons.issued },
            { name: ctx.t("coupon.redeemed"), value: coupons.redeemed },
          ],
        },
      ],
    });
    const rows = [["*", ...stages.map((s) => coupons[s])], ...coupons.templates.map((t) => [t.template, ...stages.map((s) => t[s])])];
    return { option, table: { columns: [ctx.t("coupon.template"), ...stages.map((s) => ctx.t("coupon." + s))], rows } };
  }

  function campaignLifts(rows, ctx) {
    const shown = rows.filter((r) => r.results && r.results.metrics && r.results.metrics.conversion);
    if (!shown.length) return null;
    const lift = (r) => r.results.metrics.conversion.lift;
    const option = base({
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: shown.map((r) => r.campaign.name) },
      yAxis: pctAxis(ctx),
      series: [
        { name: ctx.t("campaigns.lift"), type: "bar", barMaxWidth: 48, data: shown.map((r) => lift(r).relative) },
        { name: ctx.t("campaigns.ci"), type: "scatter", symbol: "rect", symbolSize: [24, 2], data: shown.map((r) => (lift(r).relative_ci || [null])[0]) },
        { name: ctx.t("campaigns.ci"), type: "scatter", symbol: "rect", symbolSize: [24, 2], data: shown.map((r) => (lift(r).relative_ci || [null, null])[1]) },
      ],
    });
    const table = shown.map((r) => [r.campaign.name, r.campaign.status, r.results.users.treatment, r.results.users.holdout, lift(r).relative, (lift(r).relative_ci || [""])[0], (lift(r).relative_ci || ["", ""])[1], lift(r).p_value]);
    return {
      option,
      table: { columns: [ctx.t("campaigns.name"), ctx.t("campaigns.status"), "treatment", "holdout", ctx.t("campaigns.lift"), "ci_low", "ci_high", ctx.t("campaigns.p")], rows: table },
    };
  }

  function labelDryRun(labels, ctx) {
    if (!labels || !labels.counts) return null;
    const option = base({
      legend: { top: 4 },
      xAxis: { type: "category", data: labels.counts.map((c) => ctx.t("label." + c.label)) },
      yAxis: { type: "value" },
      series: [
        { name: ctx.t("playbook.live"), type: "bar", data: labels.counts.map((c) => c.live) },
        { name: ctx.t("playbook.candidate"), type: "bar", data: labels.counts.map((c) => c.new) },
      ],
    });
    const rows = labels.counts.map((c) => [c.label, c.live, c.new]);
    return { option, table: { columns: [ctx.t("lifecycle.filter"), ctx.t("playbook.live"), ctx.t("playbook.candidate")], rows } };
  }

  root.LiucunCharts = {
    trendVsPrevious,
    monthsAgainstTarget,
    retentionMatrix,
    retentionCurves,
    lifecycleBuckets,
    labelCounts,
    riskDistribution,
    funnelSteps,
    funnelGroups,
    exitRates,
    pathsSankey,
    tapHeatmap,
    loadDistribution,
    loadChurnCurve,
    withinByGroup,
    pointsDaily,
    levels,
    checkinsDaily,
    ladderSteps,
    couponFunnel,
    campaignLifts,
    labelDryRun,
    acyclic,
  };
})(typeof window !== "undefined" ? window : globalThis);
