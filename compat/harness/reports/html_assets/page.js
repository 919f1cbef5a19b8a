/* compat.html: draws the grid and the detail view from the embedded JSON.
   Every string from the data is untrusted: it reaches the DOM through textContent
   (el(), append(string)) or a DOM property; nothing here parses a string as HTML.
   The page says only what was measured: a grid position no cell ran is marked
   "not measured" (or "inferred" inside a row's measured working range), never
   with a status symbol. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  performance.mark("compat:start");  // marks for the load-time breakdown the browser tests print
  const D = JSON.parse($("compat-data").textContent);
  const str = (v) => (v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const firstLine = (s) => str(s).split(/\r\n|\r|\n/)[0];
  const sym = (status) => (D.statuses[status] || { sym: "?" }).sym;
  const W = D.words;
  const OK = "\u2705", BAD = "\u274c", DASH = "\u2013", TIMES = "\u00d7";

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
  const mib = (b) => (typeof b === "number" ? (b / 1048576).toFixed(1) + " MiB (" + b + " bytes)" : b);

  // Status colours come from the data (vocab.py), light and dark; page.css picks one by prefers-color-scheme.
  // (A CSSOM property, not a style attribute: the CSP admits it.)
  const rootStyle = document.documentElement.style;
  for (const [s, v] of Object.entries(D.statuses)) {
    rootStyle.setProperty("--" + s + "-l", v.colour);
    rootStyle.setProperty("--" + s + "-d", v.dark);
  }

  // The page data leaves out what a cell's section already says; put it back once.
  D.sections.forEach((s, si) => {
    for (const i of s.cells) {
      const c = D.cells[i];
      c.sec = si;
      c.trl = s.trls[c.row];
      c.transformers = s.tfs[c.col];
      c.resolution = s.resolution;
      c.trainer = s.trainer;
      c.adapterCovers = s.adapter;
      c.forced = s.forced;
    }
  });
  const PIDX = {};
  D.probes.forEach((p, i) => { PIDX[p.key] = i; });
  const pval = (c, key) => { const v = c.pv ? c.pv[PIDX[key]] : undefined; return v === undefined ? null : v; };
  const cellById = new Map(D.cells.map((c, i) => [c.id, i]));

  // ------------------------------------------------------------------ colourings
  // Each value has a colour class AND a symbol AND a word: colour is never the only signal.
  const KIND = { legacy: "legacy formatter (old example script)", adapter: "adapter formatter" };
  function fmtCount(c, kindIndex) {
    const f = c.fmt ? D.fmts[c.fmt[kindIndex]] : undefined;
    if (!f) return null;
    const n = D.caseSets[f.set].length;
    let bad = 0;
    for (const ids of Object.values(f.bad)) bad += ids.length;
    return { n: n, pass: n - bad };
  }
  function adapterWords(c) {
    const words = adapterOutcome(c);
    // The script's run can pass while another adapter test of the cell failed: never show that as clean.
    const failed = ((c.tests || {}).failed || []).filter((f) => f.id.includes("/test_adapter.py::"));
    if (!failed.length || words.k === "bad") return words;
    return { k: "bad", sym: BAD, detail: words.detail, text: words.text + ", " + failed.length + " adapter test(s) failed",
      long: words.long + "; but " + failed.length + " adapter test(s) of this cell failed: " +
        failed.map((f) => f.id.split("::").slice(1).join("::")).join(", ") + " (see the failed cell tests)" };
  }
  function adapterOutcome(c) {
    const detail = c.adapter_detail === undefined ? {} : D.details[c.adapter_detail] || {};
    if (!c.adapter) {
      const why = c.status === "unresolvable" ? "the pair never installed, so there was nothing to check"
        : c.status === "error" ? "the harness failed before the check" : !c.adapterCovers
          ? "the adapter covers " + D.adapterTitles + " only" : "the cell did not reach it";
      return { k: "none", sym: DASH, text: "not run", long: "not run: " + why, detail: detail };
    }
    if (c.adapter === "fail") {
      return { k: "bad", sym: BAD, text: "fail", long: "fail: the adapter did not do what it must on this pair", detail: detail };
    }
    if (c.adapter_outcome === "refused") {
      return { k: "ok", sym: OK, text: "refused", detail: detail,
        long: "pass, by refusing: this pair is broken, and the adapter refused it up front (BrokenPairError naming " +
          "the pair and the failing stage, before any work), which is what it must do" };
    }
    if (c.adapter_outcome === "trained") {
      return { k: "ok", sym: OK, text: "trained", detail: detail,
        long: "pass, by training: a user's script on the adapter formatted every boundary row and trained on this pair" };
    }
    return { k: "ok", sym: OK, text: "pass", long: "pass", detail: detail };
  }
  const marks = (c) => (c.yanked || []).map((y) => y + " yanked").concat(c.forced ? ["forced"] : []);
  const statusText = (c) => {
    let t = c.status === "compatible" ? c.use || "" : c.status === "incompatible" && c.failure
      ? c.failure.stage + (c.failure.drift ? ", drift" : "") : c.status;
    const m = marks(c);
    if (m.length) t += " (" + m.join(", ") + ")";
    return t;
  };
  const GRID_LEGEND = [["nm", "\u00b7", W.notMeasured, W.notMeasuredText], ["inf", "\u25cc", W.inferred, W.inferredText]];
  const PROBES = [{
    id: "status", label: "status",
    value: (c) => ({ k: c.status, sym: sym(c.status), bad: c.status !== "compatible", text: statusText(c) }),
    title: (c) => c.status + (c.status === "compatible" && c.use ? ": hand the tokenizer over as " + c.use + "="
      : c.failure && c.status !== "unresolvable" ? " at " + c.failure.stage : ""),
    legend: Object.keys(D.statuses).map((s) => [s, sym(s), s, D.statuses[s].text]).concat([
      ["", "", "processing_class / tokenizer", "on a compatible cell: the keyword to hand the tokenizer to the trainer under"],
      ["", "", "drift", W.drift.replace(/^drift:\s*/, "")],
      ["", "", "yanked / forced", "a yanked release; run past TRL's declared requirements with uv overrides"]]),
  }];
  // One entry per probe of the registry (compat/probes.py): a new probe shows up here by itself.
  // A probe with no trainers listed is one every trainer records.
  const appliesTo = (p, c) => !(p.trainers || []).length || p.trainers.includes(c.trainer);
  for (const p of D.probes) {
    const meanings = p.values || {};
    const known = Object.keys(meanings);
    const isGood = (v) => !p.good.length || p.good.includes(v);
    PROBES.push({
      id: "probe:" + p.key, label: p.label,
      value: (c) => {
        const v = pval(c, p.key);
        if (v === null || (p.unmeasured || []).includes(str(v))) {
          const applies = appliesTo(p, c);
          return { k: "none", sym: DASH, text: applies ? "not measured" : "n/a", bad: false };
        }
        const good = isGood(str(v));
        return { k: good ? (known.length ? "ok" : "info") : "bad", sym: good ? OK : BAD, text: str(v), bad: !good };
      },
      legend: (known.length ? known.filter((v) => !(p.unmeasured || []).includes(v))
        .map((v) => [isGood(v) ? "ok" : "bad", isGood(v) ? OK : BAD, v, meanings[v]])
        : [["info", OK, "value", p.about]])
        .concat([["none", DASH, "not measured", "the cell did not reach this probe"], ["none", DASH, "n/a", "the probe does not apply to this trainer"]]),
    });
  }
  D.kinds.forEach((kind, ki) => {
    PROBES.push({
      id: "fmt:" + kind, label: KIND[kind] || "formatter " + kind,
      value: (c) => {
        const n = fmtCount(c, ki);
        if (!n) return { k: "none", sym: DASH, text: "not run", bad: false };
        const ok = n.pass === n.n;
        return { k: ok ? "ok" : "bad", sym: ok ? OK : BAD, text: n.pass + "/" + n.n, bad: !ok };
      },
      legend: [["ok", OK, "n/n", "every boundary case formats correctly"], ["bad", BAD, "p/n", "p of n cases format correctly"],
        ["none", DASH, "not run", "the cell did not reach the formatter cases"]],
    });
  });
  PROBES.push({
    id: "adapter", label: "adapter check",
    value: (c) => { const a = adapterWords(c); return { k: a.k, sym: a.sym, text: a.text, bad: a.k === "bad" }; },
    legend: [["ok", OK, "trained", "compatible pair: a user's script on the adapter formatted every boundary row and trained"],
      ["ok", OK, "refused", "broken pair: the adapter refused it up front with an explanation, before any work (what it must do)"],
      ["bad", BAD, "fail", "the adapter misbehaved on this pair (open the cell)"],
      ["none", DASH, "not run", "no environment (unresolvable), a harness error, or a trainer the adapter does not cover"]],
  });

  // ------------------------------------------------------------------ header
  function drawHeader() {
    const m = D.meta;
    const dl = $("meta");
    const add = (k, v) => { if (str(v) === "") return; const d = el("div"); d.append(el("dt", k), el("dd", v)); dl.append(d); };
    const env = (req, inst) => {
      const i = (inst || []).join(", ");
      return req && i && i !== str(req) ? i + " (requested " + str(req) + ")" : i || str(req);
    };
    const hardware = str(m.hardware) || (D.devices.length ? D.devices.join(", ") : "not recorded");
    const on = $("measured-on");
    on.append("Verdicts measured on ", el("strong", hardware));
    const torch = env(m.torch, D.installed.torch), python = env(m.python, D.installed.python);
    if (torch) on.append(", torch ", el("strong", torch));
    if (python) on.append(", Python ", el("strong", python));
    if (D.devices.length) on.append("; training ran on device ", el("strong", D.devices.join(", ")));
    on.append(". Rows are TRL releases and columns transformers releases, newest first; click a cell for its detail.");
    add("measured", m.generated);
    add("rendered", m.rendered);
    add("profile", m.profile);
    add("cells", D.cells.length);
    add("platform", m.platform);
    add("cell suite", m.suite);
    for (const s of Object.keys(D.statuses)) $("counts").append(el("span", sym(s) + " " + D.counts[s] + " " + s));
  }

  // ------------------------------------------------------------------ grids
  const btn = new Array(D.cells.length);
  const bad = new Uint8Array(D.cells.length);
  const grids = [];  // per section: its rows and column heads, for filtering without queries

  function worksCell(s, trl) {
    const td = el("td", null, "works");
    const spans = (s.spans[trl] || []).slice().reverse();  // newest first, like the columns
    if (!spans.length) {
      td.append(el("span", "none: no cell of this row trains", "muted"));
      td.title = "no cell of this row measured compatible";
      return td;
    }
    const ranges = el("span", null, "ranges");
    spans.forEach((sp, n) => {
      if (n) ranges.append(", ");
      const r = el("span", sp.lo === sp.hi ? sp.lo : sp.lo + DASH + sp.hi, "range");
      r.title = "measured compatible at transformers " + sp.measured.join(", ");
      ranges.append(r);
      if (sp.gaps.length) {
        const g = el("span", " (" + (sp.gaps.length <= 2 ? W.inferred + ": " + sp.gaps.join(", ") : sp.gaps.length + " " + W.inferred) + ")", "inferred-note");
        g.title = W.inferred + ", not measured: " + sp.gaps.join(", ");
        ranges.append(g);
      }
    });
    td.append(ranges);
    const uses = s.uses[trl] || [];
    if (uses.length) {
      const u = el("span", null, "use");
      u.append("use ");
      uses.slice().reverse().forEach((x, n) => {
        if (n) u.append(", ");
        u.append(el("code", x.use + "="));
        if (uses.length > 1) u.append(" (" + (x.lo === x.hi ? x.lo : x.lo + DASH + x.hi) + ")");
      });
      u.title = "the keyword to hand the tokenizer to the trainer under, as measured on this row's compatible cells";
      td.append(u);
    }
    return td;
  }

  function drawGrids() {
    const frag = document.createDocumentFragment();
    D.sections.forEach((s, si) => {
      const sec = el("section");
      sec.append(el("h2", s.title));
      const wrap = el("div", null, "scroll");
      const t = el("table", null, "grid");
      const hr = t.createTHead().insertRow();
      const corner = el("th", "TRL \u2193 \\ transformers \u2192", "corner");
      corner.scope = "col";
      const wh = el("th", "works with transformers (measured) \u00b7 keyword", "works-head");
      wh.scope = "col";
      hr.append(corner, wh);
      const heads = s.tfs.map((v) => { const th = el("th", v); th.scope = "col"; hr.append(th); return th; });
      const at = new Int32Array(s.trls.length * s.tfs.length).fill(-1);
      for (const i of s.cells) at[D.cells[i].row * s.tfs.length + D.cells[i].col] = i;
      const body = t.createTBody();
      const rows = [];
      s.trls.forEach((trl, ri) => {
        const tr = document.createElement("tr");
        const th = el("th", trl);
        th.scope = "row";
        tr.append(th, worksCell(s, trl));
        const gaps = new Set([].concat(...(s.spans[trl] || []).map((sp) => sp.gaps)));
        const tds = [], idx = [];
        for (let ci = 0; ci < s.tfs.length; ci++) {
          const i = at[ri * s.tfs.length + ci];
          const td = document.createElement("td");
          if (i >= 0) {
            const b = document.createElement("button");
            b.type = "button";
            b.dataset.cell = String(i);
            td.append(b);
            btn[i] = b;
            idx.push(i);
          } else if (gaps.has(s.tfs[ci])) {
            td.className = "inf";
            td.textContent = "\u25cc " + W.inferred;
            td.title = "TRL " + trl + " " + TIMES + " transformers " + s.tfs[ci] + ": " + W.inferred + ": " + W.inferredText;
          } else {
            td.className = "nm";
            td.textContent = "\u00b7";
            td.title = "TRL " + trl + " " + TIMES + " transformers " + s.tfs[ci] + ": " + W.notMeasured + ": " + W.notMeasuredText;
          }
          tr.append(td);
          tds.push(td);
        }
        body.append(tr);
        rows.push({ tr: tr, tds: tds, cells: idx, trl: trl, shown: true });
      });
      wrap.append(t);
      sec.append(wrap);
      frag.append(sec);
      grids.push({ sec: sec, s: s, rows: rows, heads: heads, cols: s.tfs.map(() => true) });
    });
    $("grids").append(frag);
    $("grids").addEventListener("click", (e) => {
      const b = e.target.closest("button.cell");
      if (b) openCell(Number(b.dataset.cell), true);
    });
  }

  function drawLegend(p) {
    const box = $("legend");
    box.replaceChildren(el("strong", p.label + ":"));
    for (const [k, s, name, text] of p.legend.concat(GRID_LEGEND)) {
      const item = el("span");
      item.append(el("span", (s ? s + " " : "") + name, "swatch" + (k ? " c-" + k : "")));
      if (text) item.append(" " + text);
      box.append(item);
    }
  }

  const probe = () => PROBES.find((x) => x.id === $("probe").value) || PROBES[0];

  function paint() {
    const p = probe();
    for (let i = 0; i < D.cells.length; i++) {
      const c = D.cells[i], b = btn[i], v = p.value(c);
      b.className = "cell c-" + v.k;
      b.textContent = v.text ? v.sym + " " + v.text : v.sym;
      b.title = "TRL " + c.trl + " " + TIMES + " transformers " + c.transformers + ": " +
        (p.title ? p.title(c) : p.label + ": " + (v.text || c.status));
      bad[i] = v.bad ? 1 : 0;
    }
    drawLegend(p);
    filter();
  }

  // Version search: "0.23" narrows the TRL rows, "4.57" the transformers columns; "trl==0.23.1",
  // "tf4.57", a cell id or a pasted pip command work too. Terms are version prefixes.
  function parseQuery(text) {
    const q = { rows: [], cols: [], unknown: [] };
    const re = /(trl|transformers|tf)?\s*[=@~<>!]*\s*v?(\d+(?:\.[0-9a-z]*)*)/gi;
    const anyRow = (t) => D.sections.some((s) => s.trls.some((v) => v.startsWith(t)));
    const anyCol = (t) => D.sections.some((s) => s.tfs.some((v) => v.startsWith(t)));
    for (const m of text.toLowerCase().matchAll(re)) {
      const who = m[1], t = m[2];
      if (who === "trl") q.rows.push(t);
      else if (who) q.cols.push(t);
      else {
        const r = anyRow(t), c = anyCol(t);
        if (r) q.rows.push(t);
        if (c) q.cols.push(t);
        if (!r && !c) q.unknown.push(t);
      }
    }
    return q;
  }
  const matches = (v, terms) => !terms.length || terms.some((t) => v.startsWith(t));

  function filter() {
    const failing = $("failing").checked;
    const query = $("search").value.trim();
    const q = parseQuery(query);
    const none = q.unknown.length > 0;
    let shown = 0, rowsShown = 0, rowsAll = 0;
    for (const g of grids) {
      let any = false;
      g.s.tfs.forEach((v, ci) => {
        const show = !none && matches(v, q.cols);
        if (show !== g.cols[ci]) {
          g.cols[ci] = show;
          g.heads[ci].hidden = !show;
          for (const r of g.rows) r.tds[ci].hidden = !show;
        }
      });
      for (const r of g.rows) {
        let visible = 0;
        for (const i of r.cells) {
          const hide = failing && !bad[i];
          if (btn[i].hidden !== hide) btn[i].hidden = hide;
          if (!hide && g.cols[D.cells[i].col]) visible++;
        }
        const show = !none && matches(r.trl, q.rows) && (!failing || visible > 0);
        if (show !== r.shown) { r.shown = show; r.tr.hidden = !show; }
        rowsAll++;
        if (show) { rowsShown++; shown += visible; any = true; }
      }
      const secShow = any && g.cols.some(Boolean);
      if (g.sec.hidden === secShow) g.sec.hidden = !secShow;
    }
    const what = shown + " of " + D.cells.length + " cells shown";
    $("shown").textContent = none ? "no TRL or transformers version starts with " + q.unknown.join(", ")
      : query || failing ? what + " (" + rowsShown + " of " + rowsAll + " rows)" : what;
  }

  // ------------------------------------------------------------------ detail
  function keywordRows(c) {
    return D.keywords.map((kw) => {
      const p = D.probes[PIDX["keyword." + kw]] || { values: {} };
      const st = pval(c, "keyword." + kw) || "untested";
      let by = (c.keyword_raised_by || {})[kw] || "";
      if (!by && st === "rejected" && c.failure && c.failure.stage === "construct") by = c.failure.raised_by || "";
      return [kw + "=", st, p.values[st] || "", st === "rejected" ? by || "(not recorded)" : ""];
    });
  }

  function formatterSection(body, c) {
    body.append(el("h3", "Formatter cases"));
    const kinds = D.kinds.map((k, ki) => [k, ki]).filter(([, ki]) => fmtCount(c, ki));
    if (!kinds.length) { body.append(el("p", "Not run in this cell.", "muted")); return; }
    body.append(el("p", "Boundary-case rows through each formatter. legacy: the old example script's format_dataset " +
      "(its failures are expected); adapter*: kto-compat's formatter.", "muted"));
    const failingCases = new Set();
    let adapterFails = false;
    const fmtOf = (ki) => D.fmts[c.fmt[ki]];
    table(body, ["formatter", "cases passing", "failing outcomes"], kinds.map(([k, ki]) => {
      const n = fmtCount(c, ki);
      const outs = Object.entries(fmtOf(ki).bad).map(([o, ids]) => {
        ids.forEach((x) => failingCases.add(x));
        return o + " " + TIMES + " " + ids.length;
      });
      if (k !== "legacy" && outs.length) adapterFails = true;
      return [KIND[k] || k, n.pass + " / " + n.n, outs.join(", ") || "\u2014"];
    }));
    if (!failingCases.size) return;
    const outcome = (ki, ci) => {
      const f = fmtOf(ki);
      for (const [o, ids] of Object.entries(f.bad)) if (ids.includes(ci)) return o;
      return D.caseSets[f.set].includes(ci) ? "pass" : "\u2014";
    };
    const det = el("details");
    det.open = adapterFails;
    det.append(el("summary", failingCases.size + " cases where a formatter does not pass (per case, legacy vs adapter)"));
    // Cases a kto-compat formatter fails come first: they are the news; legacy failures are expected.
    const adapterBad = (ci) => kinds.some(([k, ki]) => k !== "legacy" && !["pass", "\u2014"].includes(outcome(ki, ci)));
    const ids = [...failingCases].sort((a, b) => adapterBad(b) - adapterBad(a) || (D.cases[a] < D.cases[b] ? -1 : 1));
    table(det, ["case@template"].concat(kinds.map(([k]) => k)), ids.map((ci) => [D.cases[ci]].concat(kinds.map(([, ki]) => outcome(ki, ci)))));
    body.append(det);
  }

  function trainingSection(body, c) {
    body.append(el("h3", "Training"));
    const t = c.training;
    if (!t) { body.append(el("p", "No training steps ran in this cell.", "muted")); return; }
    const f = dlist(body);
    f("device", t.device);
    f("dtype of the training forward", str(t.dtype) + (t.autocast ? " (autocast)" : ""));
    f("optimizer steps", t.steps);
    f("keyword the run used", t.keyword ? t.keyword + "=" : "");
    f("losses, one per step", (t.losses || []).map(str).join(", "));
    f("training seconds", t.seconds);
    f("peak memory of training", mib(t.peak_memory_bytes));
    f("memory measured as", t.memory_method);
    const known = ["device", "dtype", "autocast", "steps", "keyword", "losses", "seconds", "peak_memory_bytes", "memory_method"];
    for (const [k, v] of Object.entries(t)) if (!known.includes(k)) f(k, v);
  }

  function testsSection(body, c) {
    body.append(el("h3", "Cell tests"));
    const t = c.tests;
    if (!t) {
      body.append(el("p", c.status === "unresolvable" || c.status === "error"
        ? "Not run: the cell never had an environment to run them in." : "No test outcomes were recorded.", "muted"));
      return;
    }
    const failed = t.failed || [];
    body.append(el("p", (t.passed || 0) + " passed, " + (t.skipped || 0) + " skipped (a skipped test is not counted as passed), " +
      failed.length + " failed."));
    if (failed.length) {
      table(body, ["test", "outcome", "first line of its message"], failed.map((f) => [f.id, f.outcome || "failed", firstLine(f.message)]));
    }
  }

  const RESOLUTION = {
    latest: "latest: every other dependency resolved as of today",
    "as-of-release": "as-of-release: every other dependency resolved as of the pair's release (uv --exclude-newer)",
  };
  const DRIFT_KIND = {
    "undeclared-dependency": "undeclared dependency: TRL imports a package none of its declared requirements brings",
    "moved-api": "moved API: a third-party package no longer has an API the pair uses",
    unknown: "a third-party dependency moved (kind not recorded)",
  };

  function fillDetail(i) {
    const c = D.cells[i];
    $("detail-title").textContent = "TRL " + c.trl + " " + TIMES + " transformers " + c.transformers;
    let head = sym(c.status) + " " + c.status + (c.failure ? " at " + c.failure.stage + (c.failure.drift ? " (dependency drift)" : "") : "");
    if (c.status === "compatible" && c.use) head += ": hand the tokenizer over as " + c.use + "=tokenizer";
    const status = $("detail-status");
    status.textContent = head;
    status.className = "status-line c-" + c.status;
    $("pip").textContent = c.pip;
    $("copy-note").textContent = "";
    $("install-note").textContent = c.resolution === "latest"
      ? "installs this pair with today's other dependencies, as this cell did (resolution latest)"
      : "this cell resolved the other dependencies as of the pair's release; the installed versions are listed below";
    const body = $("detail-body");
    body.replaceChildren();

    const facts = dlist(body);
    facts("cell id (permalink)", c.id);
    facts("trainer", c.trainer);
    facts("resolution", RESOLUTION[c.resolution] || c.resolution);
    if (c.declared) {
      facts("TRL declares transformers", c.declared + (c.declared_ok === true ? " (allows " + c.transformers + ")"
        : c.declared_ok === false ? " (excludes " + c.transformers + ")" : ""));
    }
    if (c.forced) facts("forced", "installed with uv overrides although TRL's metadata forbids this pair");
    if ((c.yanked || []).length) facts("yanked release", c.yanked.join(", ") + " (withdrawn from the index after release)");
    facts("released (the later upload time of the two releases)", c.released);
    const a = adapterWords(c);
    facts("adapter check", a.long);
    for (const [k, v] of Object.entries(a.detail)) facts("adapter " + k, v);
    if (c.tests) {
      facts("cell tests", (c.tests.passed || 0) + " passed, " + (c.tests.skipped || 0) + " skipped, " + (c.tests.failed || []).length + " failed");
    }

    if (c.failure) {
      body.append(el("h3", c.status === "error" ? "Harness error" : "Error"));
      const f = dlist(body);
      f("stage", c.failure.stage);
      f("first line of the error", firstLine(c.failure.message));
      f("raised by", c.failure.raised_by);
      if (c.failure.fault) f("fault", c.failure.fault + " (the harness failed; this says nothing about the pair)");
      const d = c.failure.drift;
      if (d) {
        f("cause: dependency drift", d.cause || W.drift);
        f("drift kind", DRIFT_KIND[d.kind] || d.kind);
        f("package that moved", d.package);
        f("importer", d.importer);
      }
      if (str(c.failure.message).trim() !== firstLine(c.failure.message).trim()) {
        const det = el("details");
        det.append(el("summary", "full message"), el("pre", c.failure.message));
        body.append(det);
      }
    }
    body.append(el("h3", "Tokenizer keyword"));
    table(body, ["keyword", "state", "meaning", "rejected by"], keywordRows(c));
    body.append(el("h3", "Probes"));
    table(body, ["probe", "value", "meaning"], D.probes.filter((p) => appliesTo(p, c)).map((p) => {
      const v = pval(c, p.key);
      const unmeasured = v === null || (p.unmeasured || []).includes(str(v));
      return [p.label, unmeasured ? "not measured" : str(v), unmeasured ? p.about : (p.values || {})[str(v)] || p.about];
    }));
    const extra = Object.entries(c.probes || {});
    if (extra.length) {
      body.append(el("h3", "Other measurements (not in this page's probe registry)"));
      table(body, ["key", "value"], extra.map(([k, v]) => [k, str(v)]));
    }
    formatterSection(body, c);
    trainingSection(body, c);
    testsSection(body, c);
    if ((c.flaky || []).length) {
      body.append(el("h3", "Runs that disagreed (" + c.flaky.length + ")"));
      table(body, ["run", "what it recorded"], c.flaky.map((r, n) => [String(n + 1), str(r)]));
    }
    body.append(el("h3", "Time and memory"));
    const tm = dlist(body);
    tm("cell wall time (seconds)", c.seconds);
    for (const [k, v] of Object.entries(c.timings || {})) tm(k + " (seconds)", v);
    tm("peak RSS of the cell (bytes)", mib(c.peak_rss_bytes));
    const warnings = (c.warnings || []).map((w) => D.warnings[w] || {});
    body.append(el("h3", "Warnings (" + warnings.length + ")"));
    if (warnings.length) table(body, ["stage", "category", "message"], warnings.map((w) => [w.stage, w.category, w.message]));
    body.append(el("h3", "Installed versions"));
    const env = c.env === undefined ? null : D.envs[c.env];
    if (!env) body.append(el("p", "No environment was installed.", "muted"));
    else table(body, ["distribution", "version"], Object.keys(env).sort().map((k) => [k, env[k] === null ? c[k] : env[k]]));
    const more = dlist(body);
    more("cell suite", "suite" in c ? c.suite || "(not recorded)" : D.meta.suite);
    if (c.log) {  // set only where the log is published beside the page (compressed): the link resolves
      const log = el("a", c.log);
      log.href = c.log;
      body.append(el("p", "Log: ", "log"));
      body.lastChild.append(log);
    }
    const link = el("a", "link to this cell");
    link.href = "#" + encodeURIComponent(c.id);
    body.append(link);
  }

  // ------------------------------------------------------------------ dialog and history
  // Clicking a cell pushes #<cell id>; Back closes the dialog, Forward reopens it, and a
  // permalink opens its cell. Closing the dialog takes its entry off the URL.
  const dlg = $("detail");
  let openIdx = -1;
  const hashId = () => { try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return ""; } };

  function showDetail(i) {
    fillDetail(i);
    openIdx = i;
    if (!dlg.open) dlg.showModal();
    $("detail-close").focus({ preventScroll: true });
    dlg.scrollTop = 0;  // every cell opens at its top, not where the previous one was left
  }
  function openCell(i, push) {
    if (!D.cells[i]) return;
    showDetail(i);
    const id = D.cells[i].id;
    if (push && hashId() !== id) history.pushState({ cell: id }, "", "#" + encodeURIComponent(id));
  }
  dlg.addEventListener("close", () => {
    const c = D.cells[openIdx];
    openIdx = -1;
    if (!c) return;
    const b = btn[cellById.get(c.id)];
    if (b && !b.hidden) b.focus({ preventScroll: true });
    if (hashId() !== c.id) return;  // history already moved on (Back, Forward or a new hash)
    if (history.state && history.state.cell === c.id) history.back();  // our entry: step back over it
    else history.replaceState(null, "", location.href.split("#")[0]);  // a permalink: drop the hash, keep history
  });
  function syncFromHash() {
    const i = cellById.get(hashId());
    if (i !== undefined) {
      if (!dlg.open || i !== openIdx) {
        showDetail(i);
        const b = btn[i];
        if (b) b.scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    } else if (dlg.open) {
      dlg.close();
    }
  }

  // Copy: the clipboard API where the browser grants it, else select the command for Ctrl+C.
  function selectPip() {
    const r = document.createRange();
    r.selectNodeContents($("pip"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(r);
  }
  $("copy").addEventListener("click", () => {
    const text = $("pip").textContent;
    const note = (t) => { $("copy-note").textContent = t; };
    const fallback = () => {
      selectPip();
      let copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      note(copied ? "Copied." : "Selected: press Ctrl+C (\u2318C) to copy.");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(() => note("Copied to the clipboard."), () => { selectPip(); note("Selected: press Ctrl+C (\u2318C) to copy."); });
    } else {
      fallback();
    }
  });

  // ------------------------------------------------------------------ start
  performance.mark("compat:parsed");
  drawHeader();
  if (matchMedia("(max-width: 640px)").matches) $("legend-box").open = false;  // a phone shows the grid first
  drawGrids();
  for (const p of PROBES) { const o = el("option", p.label); o.value = p.id; $("probe").append(o); }
  $("probe").addEventListener("change", paint);
  $("failing").addEventListener("change", filter);
  let pending = 0;
  $("search").addEventListener("input", () => {
    if (!pending) pending = requestAnimationFrame(() => { pending = 0; filter(); });
  });
  $("detail-close").addEventListener("click", () => dlg.close());
  dlg.addEventListener("click", (e) => { if (e.target === dlg) dlg.close(); });
  window.addEventListener("popstate", syncFromHash);
  window.addEventListener("hashchange", syncFromHash);
  performance.mark("compat:drawn");
  paint();
  performance.mark("compat:painted");
  syncFromHash();
  // Ready once the grid is laid out and the next frame starts: what "interactive" means in the tests.
  void $("grids").offsetHeight;
  performance.mark("compat:laid-out");
  requestAnimationFrame(() => {
    document.body.dataset.readyMs = performance.now().toFixed(1);
    document.body.dataset.ready = "1";
  });
})();
