/* compat.html: draws the grid and the detail view from the embedded JSON.
   Every string from the data is untrusted: it reaches the DOM through textContent
   (el(), append(string)) or a DOM property; nothing here parses a string as HTML. */
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("compat-data").textContent);
  const $ = (id) => document.getElementById(id);
  const str = (v) => (v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const firstLine = (s) => str(s).split(/\r\n|\r|\n/)[0];
  const sym = (status) => (D.statuses[status] || { sym: "?" }).sym;
  // The page data leaves out what a cell's section already says; put it back once.
  for (const s of D.sections) {
    for (const i of s.cells) {
      const c = D.cells[i];
      c.trl = s.trls[c.row];
      c.transformers = s.tfs[c.col];
      c.resolution = s.resolution;
      c.trainer = s.trainer;
      c.forced = s.forced;
    }
  }
  const PIDX = {};
  D.probes.forEach((p, i) => { PIDX[p.key] = i; });
  const pval = (c, key) => { const v = c.pv ? c.pv[PIDX[key]] : undefined; return v === undefined ? null : v; };

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = str(text);
    if (cls) e.className = cls;
    return e;
  }
  function dlist(parent) {
    const d = el("dl");
    parent.append(d);
    return (k, v) => { if (str(v) !== "") d.append(el("dt", k), el("dd", v)); };
  }
  function table(parent, head, rows) {
    const t = el("table");
    const h = t.createTHead().insertRow();
    for (const x of head) h.append(el("th", x));
    const b = t.createTBody();
    for (const r of rows) { const tr = b.insertRow(); for (const x of r) tr.append(el("td", x)); }
    parent.append(t);
    return t;
  }

  // Probes: what a cell shows. Each value has a colour class AND a symbol AND a word.
  const KW = {
    accepted: ["ok", "\u2705", "KTOTrainer is built with it"],
    deprecated: ["warn", "\u26a0\ufe0f", "accepted with a deprecation warning"],
    rejected: ["bad", "\u274c", "construction raises TypeError"],
    untested: ["none", "\u2013", "not reached"],
  };
  const KIND = { legacy: "legacy formatter (old example script)", adapter: "adapter formatter" };
  const fmtOf = (c, kind) => (c.fmt ? D.fmts[c.fmt[D.kinds.indexOf(kind)]] : undefined);
  function fmtCount(c, kind) {
    const f = fmtOf(c, kind);
    if (!f) return null;
    const n = D.caseSets[f.set].length;
    let bad = 0;
    for (const ids of Object.values(f.bad)) bad += ids.length;
    return { n: n, pass: n - bad };
  }
  const PROBES = [{
    id: "status", label: "status",
    value: (c) => ({
      k: c.status, sym: sym(c.status), bad: c.status !== "compatible",
      text: c.status === "compatible" ? c.use || "" : c.status === "incompatible" && c.failure ? c.failure.stage : c.status,
    }),
    legend: Object.keys(D.statuses).map((s) => [s, sym(s), s, D.statuses[s].text])
      .concat([["", "", "processing_class / tokenizer", "on compatible cells: the keyword to hand the tokenizer under"]]),
  }];
  // One entry per probe of the registry (compat/probes.py): a new probe shows up here by itself.
  for (const p of D.probes) {
    const meanings = p.values || {};
    const known = Object.keys(meanings);
    PROBES.push({
      id: "probe:" + p.key, label: p.label,
      value: (c) => {
        const v = pval(c, p.key);
        if (v === null || v === "untested") {
          const applies = (p.trainers || []).includes(c.trainer || "kto");
          return { k: "none", sym: "\u2013", text: applies ? "not measured" : "n/a", bad: false };
        }
        const good = !p.good.length || p.good.includes(str(v));
        return { k: good ? (known.length ? "ok" : "info") : "bad", sym: good ? "\u2705" : "\u274c", text: str(v), bad: !good };
      },
      legend: (known.length ? known.map((v) => [p.good.includes(v) || !p.good.length ? "ok" : "bad",
        p.good.includes(v) || !p.good.length ? "\u2705" : "\u274c", v, meanings[v]]) : [["info", "\u2705", "value", p.about]])
        .concat([["none", "\u2013", "not measured", "the cell did not reach this probe, or it does not apply to this trainer"]]),
    });
  }
  for (const kind of D.kinds) {
    PROBES.push({
      id: "fmt:" + kind, label: KIND[kind] || "formatter " + kind,
      value: (c) => {
        const n = fmtCount(c, kind);
        if (!n) return { k: "none", sym: "\u2013", text: "not run", bad: false };
        const ok = n.pass === n.n;
        return { k: ok ? "ok" : "bad", sym: ok ? "\u2705" : "\u274c", text: n.pass + "/" + n.n, bad: !ok };
      },
      legend: [["ok", "\u2705", "n/n", "every case passes"], ["bad", "\u274c", "p/n", "p of n cases pass"], ["none", "\u2013", "not run", ""]],
    });
  }
  PROBES.push({
    id: "adapter", label: "adapter check",
    value: (c) => c.adapter === "pass" ? { k: "ok", sym: "\u2705", text: "pass", bad: false }
      : c.adapter === "fail" ? { k: "bad", sym: "\u274c", text: "fail", bad: true }
      : { k: "none", sym: "\u2013", text: "not run", bad: false },
    legend: [["ok", "\u2705", "pass", "the adapter ran a script on this pair"], ["bad", "\u274c", "fail", ""], ["none", "\u2013", "not run", ""]],
  });

  const buttons = [];
  const sections = [];

  function drawHeader() {
    const m = D.meta;
    const dl = $("meta");
    const add = (k, v) => { if (str(v) === "") return; const d = el("div"); d.append(el("dt", k), el("dd", v)); dl.append(d); };
    const env = (req, inst) => {
      const i = (inst || []).join(", ");
      return req && i && i !== str(req) ? i + " (requested " + str(req) + ")" : i || req;
    };
    add("generated", m.generated);
    add("profile", m.profile);
    add("cells", D.cells.length);
    add("python", env(m.python, D.installed.python));
    add("torch", env(m.torch, D.installed.torch));
    add("platform", m.platform);
    add("suite", m.suite);
    for (const s of Object.keys(D.statuses)) $("counts").append(el("span", sym(s) + " " + D.counts[s] + " " + s));
  }

  function drawGrids() {
    for (const s of D.sections) {
      const sec = el("section");
      sec.append(el("h2", s.title));
      const wrap = el("div", null, "scroll");
      const t = el("table", null, "grid");
      const hr = t.createTHead().insertRow();
      const corner = el("th", "TRL \\ transformers", "corner");
      corner.scope = "col";
      hr.append(corner);
      for (const v of s.tfs) { const th = el("th", v); th.scope = "col"; hr.append(th); }
      const body = t.createTBody();
      for (const v of s.trls) {
        const tr = body.insertRow();
        const th = el("th", v);
        th.scope = "row";
        tr.append(th);
        for (let i = 0; i < s.tfs.length; i++) tr.append(el("td"));
      }
      for (const i of s.cells) {
        const c = D.cells[i];
        const b = el("button", null, "cell");
        b.type = "button";
        b.dataset.cell = String(i);
        body.rows[c.row].cells[c.col + 1].append(b);
        buttons.push(b);
      }
      t.addEventListener("click", (e) => {
        const b = e.target.closest("button.cell");
        if (b) openDetail(Number(b.dataset.cell));
      });
      wrap.append(t);
      sec.append(wrap);
      $("grids").append(sec);
      sections.push(sec);
    }
  }

  function drawLegend(p) {
    const box = $("legend");
    box.replaceChildren(el("strong", p.label + ":"));
    for (const [k, s, name, text] of p.legend) {
      const item = el("span");
      item.append(el("span", (s ? s + " " : "") + name, "swatch" + (k ? " c-" + k : "")));
      if (text) item.append(" " + text);
      box.append(item);
    }
  }

  function paint() {
    const p = PROBES.find((x) => x.id === $("probe").value) || PROBES[0];
    const failing = $("failing").checked;
    let shown = 0;
    for (const b of buttons) {
      const c = D.cells[Number(b.dataset.cell)];
      const v = p.value(c);
      b.className = "cell c-" + v.k;
      b.textContent = v.text ? v.sym + " " + v.text : v.sym;
      b.title = "TRL " + c.trl + " \u00d7 transformers " + c.transformers + ": " + p.label + " " + (v.text || c.status);
      b.dataset.bad = v.bad ? "1" : "0";
      b.hidden = failing && !v.bad;
      if (!b.hidden) shown++;
    }
    // Rows (and whole sections) with nothing left to show fold away, so a big grid shrinks to its failures.
    for (const sec of sections) {
      let any = false;
      for (const tr of sec.querySelectorAll("tbody tr")) {
        tr.hidden = failing && !tr.querySelector("button.cell:not([hidden])");
        any = any || !tr.hidden;
      }
      sec.hidden = !any;
    }
    $("shown").textContent = shown + " of " + buttons.length + " cells shown";
    drawLegend(p);
  }

  function keywordRows(c) {
    return D.keywords.map((kw) => {
      const st = pval(c, "keyword." + kw) || "untested";
      let by = (c.keyword_raised_by || {})[kw] || "";
      if (!by && st === "rejected" && c.failure && c.failure.stage === "construct") by = c.failure.raised_by || "";
      return [kw + "=", st, st === "rejected" ? by || "(not recorded)" : ""];
    });
  }

  function formatterSection(body, c) {
    body.append(el("h3", "Formatter cases"));
    const kinds = D.kinds.filter((k) => fmtOf(c, k));
    if (!kinds.length) { body.append(el("p", "Not run in this cell.", "muted")); return; }
    body.append(el("p", "legacy: the old example script's format_dataset; adapter*: kto-compat's formatter.", "muted"));
    const failingCases = new Set();
    let adapterFails = false;
    table(body, ["formatter", "passing", "failing outcomes"], kinds.map((k) => {
      const n = fmtCount(c, k);
      const outs = Object.entries(fmtOf(c, k).bad).map(([o, ids]) => {
        ids.forEach((x) => failingCases.add(x));
        return o + " \u00d7 " + ids.length;
      });
      if (k !== "legacy" && outs.length) adapterFails = true;
      return [KIND[k] || k, n.pass + " / " + n.n, outs.join(", ") || "\u2014"];
    }));
    if (!failingCases.size) return;
    const outcome = (k, ci) => {
      const f = fmtOf(c, k);
      for (const [o, ids] of Object.entries(f.bad)) if (ids.includes(ci)) return o;
      return D.caseSets[f.set].includes(ci) ? "pass" : "\u2014";
    };
    const det = el("details");
    det.open = adapterFails;
    det.append(el("summary", failingCases.size + " cases where a formatter does not pass (per case, legacy vs adapter)"));
    // Cases a kto-compat formatter fails come first: they are the news; legacy failures are expected.
    const adapterBad = (ci) => kinds.some((k) => k !== "legacy" && outcome(k, ci) !== "pass" && outcome(k, ci) !== "\u2014");
    const ids = [...failingCases].sort((a, b) => adapterBad(b) - adapterBad(a) || (D.cases[a] < D.cases[b] ? -1 : 1));
    table(det, ["case@template"].concat(kinds), ids.map((ci) => [D.cases[ci]].concat(kinds.map((k) => outcome(k, ci)))));
    body.append(det);
  }

  function trainingSection(body, c) {
    body.append(el("h3", "Training"));
    const t = c.training;
    if (!t) { body.append(el("p", "No KTO steps ran.", "muted")); return; }
    const f = dlist(body);
    const mib = (b) => (typeof b === "number" ? (b / 1048576).toFixed(1) + " MiB (" + b + " bytes)" : b);
    f("device", t.device);
    f("dtype", str(t.dtype) + (t.autocast ? " (autocast)" : ""));
    f("steps", t.steps);
    f("keyword used", t.keyword);
    f("losses", (t.losses || []).map(str).join(", "));
    f("seconds", t.seconds);
    f("peak memory", mib(t.peak_memory_bytes));
    f("memory measured as", t.memory_method);
    const known = ["device", "dtype", "autocast", "steps", "keyword", "losses", "seconds", "peak_memory_bytes", "memory_method"];
    for (const [k, v] of Object.entries(t)) if (!known.includes(k)) f(k, v);
  }

  function openDetail(i) {
    const c = D.cells[i];
    if (!c) return;
    $("detail-title").textContent = "TRL " + c.trl + " \u00d7 transformers " + c.transformers;
    const body = $("detail-body");
    body.replaceChildren();
    let head = sym(c.status) + " " + c.status + (c.failure ? " at " + c.failure.stage : "");
    if (c.status === "compatible" && c.use) head += ": pass the tokenizer as " + c.use + "=";
    const p = el("p");
    p.append(el("span", head, "status-line c-" + c.status));
    body.append(p);
    const facts = dlist(body);
    facts("cell", c.id);
    facts("resolution", c.resolution);
    facts("TRL declares transformers", c.declared);
    if (c.forced) facts("forced", "installed with overrides although TRL's metadata forbids this pair");
    facts("yanked", (c.yanked || []).join(", "));
    facts("released", c.released);
    facts("adapter check", c.adapter || "not run");
    if (c.failure) {
      body.append(el("h3", "Error"));
      const f = dlist(body);
      f("stage", c.failure.stage);
      f("error", firstLine(c.failure.message));
      f("raised by", c.failure.raised_by);
      if (c.failure.drift) f("cause", "a third-party dependency moved under this pair (not trl/transformers)");
      if (str(c.failure.message).trim() !== firstLine(c.failure.message).trim()) {
        const det = el("details");
        det.append(el("summary", "full message"), el("pre", c.failure.message));
        body.append(det);
      }
    }
    body.append(el("h3", "Tokenizer keyword"));
    table(body, ["keyword", "state", "rejected by"], keywordRows(c));
    body.append(el("h3", "Probes"));
    table(body, ["probe", "value", "meaning"], D.probes.filter((p) => (p.trainers || []).includes(c.trainer || "kto"))
      .map((p) => { const v = pval(c, p.key); return [p.label, v === null ? "not measured" : str(v), (p.values || {})[str(v)] || p.about]; }));
    formatterSection(body, c);
    trainingSection(body, c);
    body.append(el("h3", "Time"));
    const tm = dlist(body);
    tm("cell seconds", c.seconds);
    for (const [k, v] of Object.entries(c.timings || {})) tm(k + " seconds", v);
    const warnings = (c.warnings || []).map((w) => D.warnings[w] || {});
    body.append(el("h3", "Warnings (" + warnings.length + ")"));
    if (warnings.length) table(body, ["stage", "category", "message"], warnings.map((w) => [w.stage, w.category, w.message]));
    body.append(el("h3", "Installed versions"));
    const env = (c.env === undefined ? null : D.envs[c.env]) || {};  // null: this cell's own trl/transformers
    table(body, ["distribution", "version"], Object.keys(env).sort().map((k) => [k, env[k] === null ? c[k] : env[k]]));
    const more = dlist(body);
    more("log", c.log);
    const link = el("a", "link to this cell");
    link.href = "#" + encodeURIComponent(c.id);
    body.append(link);
    const dlg = $("detail");
    if (!dlg.open) dlg.showModal();
    $("detail-close").focus();
  }

  function openFromHash() {
    let id = "";
    try { id = decodeURIComponent(location.hash.slice(1)); } catch (e) { return; }
    const i = D.cells.findIndex((c) => c.id === id);
    if (i >= 0) openDetail(i);
  }

  drawHeader();
  drawGrids();
  for (const p of PROBES) { const o = el("option", p.label); o.value = p.id; $("probe").append(o); }
  $("probe").addEventListener("change", paint);
  $("failing").addEventListener("change", paint);
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) $("detail").close(); });
  window.addEventListener("hashchange", openFromHash);
  paint();
  openFromHash();
  document.body.dataset.ready = "1";
})();
