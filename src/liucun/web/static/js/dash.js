/* liucun dashboard core: messages, zh-CN formatting, the admin API, and chart panels. */
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("liucun-config").textContent);
  const M = cfg.messages;
  const locale = cfg.lang === "zh" ? "zh-CN" : "en-US";

  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(M, key) ? M[key] : key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  const nf = (opts) => new Intl.NumberFormat(locale, opts);
  const fmt = {
    int: (v) => (v == null ? "–" : nf({ maximumFractionDigits: 0 }).format(v)),
    num: (v, d = 1) => (v == null ? "–" : nf({ minimumFractionDigits: d, maximumFractionDigits: d }).format(v)),
    pct: (v, d = 1) => (v == null ? "–" : nf({ style: "percent", minimumFractionDigits: d, maximumFractionDigits: d }).format(v)),
    date: (s) => (s ? new Intl.DateTimeFormat(locale, { year: "numeric", month: "2-digit", day: "2-digit", timeZone: "UTC" }).format(new Date(s.slice(0, 10) + "T00:00:00Z")) : "–"),
    shortDate: (s) => (s ? new Intl.DateTimeFormat(locale, { month: "numeric", day: "numeric", timeZone: "UTC" }).format(new Date(s.slice(0, 10) + "T00:00:00Z")) : "–"),
    monthShort: (s) => new Intl.DateTimeFormat(locale, { year: "numeric", month: "numeric", timeZone: "UTC" }).format(new Date(s.slice(0, 7) + "-01T00:00:00Z")),
    month: (s) => new Intl.DateTimeFormat(locale, { year: "numeric", month: "long", timeZone: "UTC" }).format(new Date(s.slice(0, 7) + "-01T00:00:00Z")),
    datetime: (s) =>
      s
        ? new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone: (cfg.app && cfg.app.timezone) || "Asia/Shanghai" }).format(new Date(s))
        : "–",
  };
  const ctx = { t, fmt, lang: cfg.lang };

  /* Dates as the API takes them (YYYY-MM-DD), moved by whole days. */
  const days = {
    add: (iso, n) => {
      const d = new Date(iso + "T00:00:00Z");
      d.setUTCDate(d.getUTCDate() + n);
      return d.toISOString().slice(0, 10);
    },
    monthEnd: (iso) => {
      const d = new Date(iso.slice(0, 7) + "-01T00:00:00Z");
      d.setUTCMonth(d.getUTCMonth() + 1);
      d.setUTCDate(0);
      return d.toISOString().slice(0, 10);
    },
    monthBefore: (iso) => {
      const d = new Date(iso.slice(0, 7) + "-01T00:00:00Z");
      d.setUTCDate(0);
      return d.toISOString().slice(0, 10);
    },
  };

  function detailText(data) {
    if (data == null) return "";
    if (typeof data === "string") return data.slice(0, 300);
    const d = data.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((p) => (p.path ? p.path + ": " : "") + (p.message || p.msg || JSON.stringify(p))).join("; ");
    if (d && typeof d === "object") return cfg.lang === "zh" && d.zh ? d.zh : d.message || JSON.stringify(d);
    return JSON.stringify(data).slice(0, 300);
  }

  /* The admin API with the session cookie; writes carry the page's CSRF token. */
  async function api(path, opts) {
    const o = opts || {};
    const method = o.method || "GET";
    const headers = Object.assign({}, o.headers || {});
    let body = o.body;
    if (method !== "GET") headers[cfg.csrfHeader] = cfg.csrf;
    if (body !== undefined && typeof body !== "string") {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const r = await fetch(path, { method, headers, body, credentials: "same-origin" });
    if (r.status === 401) {
      location.href = "/dashboard/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("401");
    }
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      const err = new Error(detailText(data) || r.statusText);
      err.status = r.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  const appPath = cfg.app ? "/admin/v1/apps/" + encodeURIComponent(cfg.app.id) : "";

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v === undefined || v === null || v === "") continue;
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else q.append(k, v);
    }
    const s = q.toString();
    return s ? "?" + s : "";
  }

  const metric = (kind, params) => api(appPath + "/metrics/" + kind + query(params));

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of [].concat(children || [])) if (c != null) e.append(c.nodeType ? c : document.createTextNode(String(c)));
    return e;
  }

  function cellText(v) {
    if (v == null) return "";
    if (typeof v === "number") return Number.isInteger(v) ? fmt.int(v) : v > -1 && v < 1 ? fmt.num(v, 3) : fmt.num(v, 2);
    return String(v);
  }

  function tableEl(table) {
    return el("table", { class: "numbers" }, [
      el("thead", {}, el("tr", {}, table.columns.map((c) => el("th", { text: c })))),
      el("tbody", {}, table.rows.map((r) => el("tr", {}, r.map((v) => el("td", { text: cellText(v), class: typeof v === "number" ? "n" : null }))))),
    ]);
  }

  function csvText(table) {
    const q = (v) => {
      const s = v == null ? "" : String(v);
      return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
    };
    return [table.columns, ...table.rows].map((r) => r.map(q).join(",")).join("\r\n") + "\r\n";
  }

  function download(name, text, type) {
    // a BOM so that Excel opens the UTF-8 (Chinese) text right
    const blob = new Blob(["\ufeff" + text], { type: type || "text/csv;charset=utf-8" });
    const a = el("a", { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    setTimeout(() => {
      URL.revokeObjectURL(a.href);
      a.remove();
    }, 1000);
  }

  const charts = [];
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));

  /* A chart panel: the chart, its numbers one click away (table or CSV), progress while the
   * data is fetched. `section[data-panel]` in the page; the title is its h2. */
  class Panel {
    constructor(section) {
      this.section = typeof section === "string" ? document.querySelector(`[data-panel="${section}"]`) : section;
      this.name = this.section.dataset.panel;
      this.status = el("div", { class: "status" });
      this.chartEl = el("div", { class: "chart" });
      this.tableEl = el("div", { class: "table-wrap", hidden: true });
      this.toggle = el("button", { type: "button", class: "link", text: t("show_table"), onclick: () => this.flip() });
      this.csv = el("button", { type: "button", class: "link", text: t("download_csv"), onclick: () => this.downloadCsv() });
      this.tools = el("div", { class: "tools", hidden: true }, [this.toggle, this.csv]);
      const head = this.section.querySelector(".panel-head") || this.section;
      head.append(this.tools);
      this.section.append(this.status, this.chartEl, this.tableEl);
      if (this.section.dataset.height) this.chartEl.style.height = this.section.dataset.height;
      this.chart = null;
      this.spec = null;
    }
    busy(message) {
      const started = Date.now();
      clearInterval(this.timer);
      this.section.classList.add("is-busy");
      const tick = () => {
        const s = Math.floor((Date.now() - started) / 1000);
        this.status.textContent = s >= 2 ? t("computing", { seconds: s }) : message || t("loading");
      };
      tick();
      this.timer = setInterval(tick, 500);
      this.status.className = "status busy";
    }
    done() {
      clearInterval(this.timer);
      this.section.classList.remove("is-busy");
      this.status.className = "status";
      this.status.textContent = "";
    }
    show(spec, note) {
      this.done();
      this.spec = spec;
      this.section.dataset.state = "drawn";
      this.tools.hidden = false;
      this.chartEl.hidden = false;
      this.tableEl.hidden = true;
      this.toggle.textContent = t("show_table");
      if (!this.chart) {
        this.chart = echarts.init(this.chartEl, null, { renderer: "canvas" });
        charts.push(this.chart);
      }
      this.chart.setOption(spec.option, true);
      this.tableEl.replaceChildren(tableEl(spec.table));
      if (note) this.status.textContent = note;
    }
    empty(message) {
      this.done();
      this.section.dataset.state = "empty";
      this.tools.hidden = true;
      this.chartEl.hidden = true;
      this.tableEl.hidden = true;
      this.status.className = "status empty";
      this.status.textContent = message || t("no_data");
    }
    fail(err) {
      this.done();
      this.section.dataset.state = "error";
      this.tools.hidden = true;
      this.chartEl.hidden = true;
      this.status.className = "status error";
      this.status.textContent = err && err.status === 404 && this.section.dataset.optional ? t("unavailable") : t("error", { message: (err && err.message) || err });
    }
    flip() {
      const showTable = this.tableEl.hidden;
      this.tableEl.hidden = !showTable;
      this.chartEl.hidden = showTable;
      this.toggle.textContent = showTable ? t("show_chart") : t("show_table");
      if (!showTable && this.chart) this.chart.resize();
    }
    downloadCsv() {
      if (this.spec) download(`${(cfg.app && cfg.app.name) || "liucun"}-${this.name}.csv`, csvText(this.spec.table));
    }
    /* Fetch and draw: `load` resolves to a builder's {option, table} or null (no data). */
    async run(load, emptyMessage) {
      this.busy();
      try {
        const spec = await load();
        if (spec) this.show(spec);
        else this.empty(emptyMessage);
      } catch (err) {
        console.error(err);
        this.fail(err);
      }
    }
  }

  function setLang(lang) {
    document.cookie = `liucun_lang=${lang}; path=/; max-age=${400 * 86400}; samesite=strict`;
    location.reload();
  }
  document.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => setLang(b.dataset.lang)));
  const appSelect = document.getElementById("app-select");
  if (appSelect) appSelect.addEventListener("change", () => (location.href = `/dashboard/${encodeURIComponent(appSelect.value)}/${cfg.page}`));

  window.Dash = { cfg, t, fmt, ctx, days, api, appPath, query, metric, el, tableEl, csvText, download, Panel, charts: window.LiucunCharts, detailText };
})();
