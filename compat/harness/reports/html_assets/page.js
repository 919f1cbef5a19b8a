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
  // The contract's fixed sets (compat/harness/fixed_sets.py): ST.COMPATIBLE is "compatible", and so on.
  const ST = D.sets.status, KS = D.sets.keyword_state, RS = D.sets.resolution, PF = D.platform;
  const AD = D.sets.adapter, AO = D.sets.adapter_outcome, CO = D.sets.case_outcome, TO = D.sets.test_outcome;
  const OK = "\u2705", BAD = "\u274c", DASH = "\u2013", TIMES = "\u00d7";
  const G_OK = "\u2713", G_BAD = "\u2717";  // the compact cells' glyphs (vocab.GLYPHS' compatible / incompatible)

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
      c.axes = s.axes || {};  // further axes (datasets, torch, ...): one section per value, named in its title
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
      const why = c.status === ST.UNRESOLVABLE ? "the pair never installed, so there was nothing to check"
        : c.status === ST.ERROR ? "the harness failed before the check" : !c.adapterCovers
          ? "the adapter covers " + D.adapterTitles + " only" : "the cell did not reach it";
      return { k: "none", sym: DASH, text: "not run", long: "not run: " + why, detail: detail };
    }
    if (c.adapter === AD.FAIL) {
      return { k: "bad", sym: BAD, text: AD.FAIL, long: AD.FAIL + ": the adapter did not do what it must on this pair", detail: detail };
    }
    if (c.adapter_outcome === AO.REFUSED) {
      return { k: "ok", sym: OK, text: AO.REFUSED, detail: detail,
        long: "pass, by refusing: this pair is broken, and the adapter refused it up front (BrokenPairError naming " +
          "the pair and the failing stage, before any work), which is what it must do" };
    }
    if (c.adapter_outcome === AO.TRAINED) {
      return { k: "ok", sym: OK, text: AO.TRAINED, detail: detail,
        long: "pass, by training: a user's script on the adapter formatted every boundary row and trained on this pair" };
    }
    return { k: "ok", sym: OK, text: AD.PASS, long: AD.PASS, detail: detail };
  }
  const marks = (c) => (c.yanked || []).map((y) => y + " yanked").concat(c.forced ? ["forced"] : []);
  // A failure measured to move with a platform fact (failure.platform): it fails on CPU, not as a pair.
  const platformOf = (c) => (c.status === ST.INCOMPATIBLE && c.failure && c.failure.platform ? c.failure.platform : "");
  const ON_CPU = () => D.statuses[PF].name;
  const statusText = (c) => {
    let t = c.status === ST.COMPATIBLE ? c.use || "" : platformOf(c) ? ON_CPU() + " (" + c.failure.stage + "): " + platformOf(c)
      : c.status === ST.INCOMPATIBLE && c.failure ? c.failure.stage + (c.failure.drift ? ", drift" : "") : c.status;
    const m = marks(c);
    if (m.length) t += " (" + m.join(", ") + ")";
    return t;
  };
  // One mark for a position or a check with no measurement, whatever the colouring.
  const NM = { k: "nm", sym: "\u00b7", mark: "", text: W.notMeasured, bad: false };
  const GRID_LEGEND = [["nm", "\u00b7", W.notMeasured, W.notMeasuredText], ["inf", "\u25cc", W.inferred, W.inferredText]];
  // Compact cells: a glyph and a one-letter mark; the words are the cell's label (title, aria-label) and the legend's.
  const glyph = (status) => (D.statuses[status] || { glyph: "?" }).glyph;
  const KW_MARK = D.keywordMarks, STAGE_MARK = D.stageMarks;
  const PROBES = [{
    id: "status", label: "verdict: does the pair train?",
    value: (c) => {
      const star = marks(c).length ? "*" : "";
      if (c.status === ST.COMPATIBLE) {
        return { k: ST.COMPATIBLE, cls: c.use ? "kw-" + c.use : "", sym: glyph(c.status), mark: (KW_MARK[c.use] || "") + star,
          text: statusText(c), bad: false };
      }
      const f = c.failure;
      const mark = c.status === ST.INCOMPATIBLE && f ? (f.drift ? "D" : STAGE_MARK[f.stage] || "") : "";
      const k = platformOf(c) ? PF : c.status;
      return { k: k, sym: glyph(k), mark: mark + star, text: statusText(c), bad: true };
    },
    title: (c) => (platformOf(c) ? ON_CPU() + " at " + c.failure.stage + " (platform-bound: " + platformOf(c) + ")"
      : c.status + (c.status === ST.COMPATIBLE && c.use ? ": hand the tokenizer over as " + c.use + "="
        : c.failure && c.status !== ST.UNRESOLVABLE ? " at " + c.failure.stage + (c.failure.drift ? " (dependency drift)" : "") : ""))
      + (marks(c).length ? " (" + marks(c).join(", ") + ")" : ""),
    legend: [[ST.COMPATIBLE, glyph(ST.COMPATIBLE) + KW_MARK[D.keywords[0]], "trains", "hand the tokenizer over as " + D.keywords[0] + "="],
      [ST.COMPATIBLE + " kw-" + D.keywords[1], glyph(ST.COMPATIBLE) + KW_MARK[D.keywords[1]], "trains", "hand it over as " + D.keywords[1] + "="],
      [ST.INCOMPATIBLE, glyph(ST.INCOMPATIBLE) + STAGE_MARK[D.sets.stage.CONSTRUCT], "installs but breaks", "the letter says where: " +
        D.stageLetters + "; D: a dependency drifted under the pair (see its " + RS.AS_OF_RELEASE + " row)"],
      [PF, glyph(PF) + STAGE_MARK[D.sets.stage.TRAIN], ON_CPU(), D.statuses[PF].text + " (search \u201ccpu\u201d to list them)"],
      [ST.UNRESOLVABLE, glyph(ST.UNRESOLVABLE), "pip refuses the pair", D.statuses[ST.UNRESOLVABLE].text],
      [ST.ERROR, glyph(ST.ERROR), "harness error", D.statuses[ST.ERROR].text],
      [ST.FLAKY, glyph(ST.FLAKY), ST.FLAKY, D.statuses[ST.FLAKY].text],
      ["", "*", "yanked or forced", "a yanked release, or run past TRL's declared requirements"]],
  }];
  // One entry per probe of the registry (compat/probes.py): a new probe shows up here by itself.
  // A probe with no trainers listed is one every trainer records.
  const appliesTo = (p, c) => !(p.trainers || []).length || p.trainers.includes(c.trainer);
  for (const p of D.probes) {
    const meanings = p.values || {};
    const known = Object.keys(meanings);
    const isGood = (v) => !p.good.length || p.good.includes(v);
    // Several good values (accepted / deprecated) are told apart by their first letter.
    const lettered = known.filter(isGood).length > 1;
    const shown = (v) => (!known.length ? { sym: "\u2022", mark: "" }  // a free-text value: a dot, the value in its label
      : { sym: isGood(v) ? G_OK : G_BAD, mark: lettered && isGood(v) ? v.charAt(0) : "" });
    PROBES.push({
      id: "probe:" + p.key, label: p.words || p.label,
      value: (c) => {
        const v = pval(c, p.key);
        if (v === null || (p.unmeasured || []).includes(str(v))) {
          return appliesTo(p, c) ? NM : { k: "none", sym: DASH, mark: "", text: "n/a", bad: false };
        }
        const good = isGood(str(v));
        return { k: good ? (known.length ? "ok" : "info") : "bad", ...shown(str(v)), text: str(v), bad: !good };
      },
      legend: (known.length ? known.filter((v) => !(p.unmeasured || []).includes(v))
        .map((v) => [isGood(v) ? "ok" : "bad", shown(v).sym + shown(v).mark, v, meanings[v]])
        : [["info", "\u2022", "a value", p.about + " (hover or open a cell for it)"]])
        .concat([["none", DASH, "n/a", "does not apply to this trainer"]]),
    });
  }
  D.kinds.forEach((kind, ki) => {
    PROBES.push({
      id: "fmt:" + kind, label: KIND[kind] || "formatter " + kind,
      value: (c) => {
        const n = fmtCount(c, ki);
        if (!n) return NM;
        const ok = n.pass === n.n;
        return { k: ok ? "ok" : "bad", sym: ok ? G_OK : G_BAD, mark: "", text: n.pass + "/" + n.n + " cases format correctly", bad: !ok };
      },
      legend: [["ok", G_OK, "all", "every boundary case formats correctly"], ["bad", G_BAD, "some fail", "open the cell for the cases"]],
    });
  });
  PROBES.push({
    id: "adapter", label: "does the adapter do its job",
    value: (c) => {
      const a = adapterWords(c);
      if (a.k === "none") return { ...NM, text: a.text };
      return { k: a.k, sym: a.k === "bad" ? G_BAD : G_OK, mark: a.text.charAt(0), text: a.text, bad: a.k === "bad" };
    },
    legend: [["ok", G_OK + AO.TRAINED.charAt(0), AO.TRAINED, "compatible pair: a user's script on the adapter formatted every boundary row and trained"],
      ["ok", G_OK + AO.REFUSED.charAt(0), AO.REFUSED, "broken pair: the adapter refused it up front with an explanation, before any work (what it must do)"],
      ["bad", G_BAD, AD.FAIL, "the adapter misbehaved on this pair (open the cell)"]],
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
    for (const s of Object.keys(D.statuses)) {
      if (s !== PF || D.counts[s]) $("counts").append(el("span", sym(s) + " " + D.counts[s] + " " + D.statuses[s].name));
    }
  }

  // ------------------------------------------------------------------ grids
  const btn = new Array(D.cells.length);
  const bad = new Uint8Array(D.cells.length);
  const grids = [];  // per section: its rows and column heads, for filtering without queries

  const range = (lo, hi) => (lo === hi ? lo : lo + DASH + hi);
  // The row's measured working spans, newest first, e.g. "4.46.3–4.57.6 (inferred: 4.50.3)".
  function spanWords(s, trl) {
    return (s.spans[trl] || []).slice().reverse().map((sp) => range(sp.lo, sp.hi) + (sp.gaps.length
      ? " (" + (sp.gaps.length <= 2 ? W.inferred + ": " + sp.gaps.join(", ") : sp.gaps.length + " " + W.inferred) + ")" : ""));
  }
  const useWords = (s, trl) => {
    const uses = s.uses[trl] || [];
    return uses.slice().reverse().map((x) => x.use + "=" + (uses.length > 1 ? " (" + range(x.lo, x.hi) + ")" : "")).join(", ");
  };
  // The other grid of the same trainer holding this TRL (latest <-> as-of-release), when a dependency drift links them:
  // the latest row has a cell that failed by drift. Returns [section index, "as of release" words] or null.
  function twinOf(si, trl) {
    const s = D.sections[si];
    const drifted = (x) => x.cells.some((i) => D.cells[i].failure && D.cells[i].failure.drift && x.trls[D.cells[i].row] === trl);
    for (let oi = 0; oi < D.sections.length; oi++) {
      const o = D.sections[oi];
      if (oi === si || o.trainer !== s.trainer || o.forced !== s.forced || !o.trls.includes(trl)
          || JSON.stringify(o.axes || {}) !== JSON.stringify(s.axes || {})) continue;
      const latest = s.resolution === RS.LATEST ? s : o.resolution === RS.LATEST ? o : null;
      if (latest && drifted(latest)) return oi;
    }
    return -1;
  }
  const rowId = (si, trl) => "row-" + si + "-" + trl;
  function twinLink(si, trl) {
    const oi = twinOf(si, trl);
    if (oi < 0) return null;
    const o = D.sections[oi];
    const works = spanWords(o, trl);
    const a = el("a", (o.resolution === RS.LATEST ? "\u2191 " : "\u2193 ") + o.resolution + ": " +
      (works.length ? works.join(", ") : "none trains"), "twin");
    a.href = "#" + rowId(oi, trl);
    a.dataset.row = rowId(oi, trl);
    a.title = "the same TRL release with its dependencies resolved " + o.resolution + " (a dependency drifted under it)";
    return a;
  }
  function worksCell(si, trl) {
    const s = D.sections[si];
    const td = el("td", null, "works");
    const spans = spanWords(s, trl);
    if (!spans.length) {
      td.append(el("span", "none trains", "muted"));
      td.title = "no cell of this row measured compatible";
    } else {
      const ranges = el("span", spans.join(", "), "ranges");
      ranges.title = "measured compatible at transformers " + (s.spans[trl] || []).map((sp) => sp.measured.join(", ")).join(", ");
      td.append(ranges);
      const u = el("span", "use " + useWords(s, trl), "use");
      u.title = "the keyword to hand the tokenizer to the trainer under, as measured on this row's compatible cells";
      if (useWords(s, trl)) td.append(u);
    }
    const twin = twinLink(si, trl);
    if (twin) td.append(twin);
    return td;
  }
  // The phone's view of a row: "trl 0.12.2: works with transformers 4.46.3 only; use processing_class=", the pip line of
  // its newest working cell, and a button opening that cell (or the row's newest cell).
  function rowItem(si, trl, cellAt) {
    const s = D.sections[si];
    const li = el("li");
    const spans = s.spans[trl] || [];
    const works = spanWords(s, trl);
    li.append(el("strong", "trl " + trl), ": ");
    li.append(works.length ? "works with transformers " + works.join(", ") + (spans.length === 1 && spans[0].lo === spans[0].hi
      ? " only" : "") + "; use " + useWords(s, trl) : "no measured transformers release trains it");
    const bound = s.cells.map((i) => D.cells[i]).filter((c) => c.trl === trl && platformOf(c));
    if (bound.length) {
      li.append("; ", el("span", sym(PF) + " " + bound.length + " fail on CPU only (platform-bound: " +
        platformOf(bound[0]) + "); not measured on a GPU", "c-platform"));
    }
    const twin = twinLink(si, trl);
    if (twin) li.append("; ", twin);
    const best = spans.length ? cellAt(trl, spans[spans.length - 1].hi) : -1;
    const line = el("div", null, "pip-row");
    if (best >= 0) line.append(el("code", installLine(D.cells[best]), "pip"));
    li.append(line);
    const open = best >= 0 ? best : s.cells.find((i) => s.trls[D.cells[i].row] === trl);
    if (open !== undefined) {
      const b = el("button", best >= 0 ? "details" : "why", "open");
      b.type = "button";
      b.dataset.cell = String(open);
      line.append(b);
    }
    return li;
  }

  function drawGrids() {
    const frag = document.createDocumentFragment();
    D.sections.forEach((s, si) => {
      const sec = el("section");
      sec.append(el("h2", s.title));
      const wrap = el("div", null, "scroll");
      const t = el("table", null, "grid");
      const hr = t.createTHead().insertRow();
      const corner = el("th", "TRL", "corner");
      corner.scope = "col";
      corner.title = "rows: TRL releases; columns: transformers releases; both newest first";
      const wh = el("th", "works with transformers", "works-head");
      wh.scope = "col";
      hr.append(corner, wh);
      const heads = s.tfs.map((v) => {
        const th = el("th", null, "tf");
        th.append(el("span", v));
        th.scope = "col";
        th.title = "transformers " + v;
        hr.append(th);
        return th;
      });
      const at = new Int32Array(s.trls.length * s.tfs.length).fill(-1);
      for (const i of s.cells) at[D.cells[i].row * s.tfs.length + D.cells[i].col] = i;
      const cellAt = (trl, tf) => at[s.trls.indexOf(trl) * s.tfs.length + s.tfs.indexOf(tf)];
      const body = t.createTBody();
      const list = el("ul", null, "rows-list");
      const rows = [];
      s.trls.forEach((trl, ri) => {
        const tr = document.createElement("tr");
        tr.id = rowId(si, trl);
        const th = el("th", trl);
        th.scope = "row";
        th.tabIndex = -1;  // a linked row takes the focus
        tr.append(th, worksCell(si, trl));
        const gaps = new Set([].concat(...(s.spans[trl] || []).map((sp) => sp.gaps)));
        const tds = [], idx = [], byCol = [];
        for (let ci = 0; ci < s.tfs.length; ci++) {
          const i = at[ri * s.tfs.length + ci];
          const td = document.createElement("td");
          byCol.push(i);
          const where = "TRL " + trl + " " + TIMES + " transformers " + s.tfs[ci] + ": ";
          if (i >= 0) {
            const b = document.createElement("button");
            b.type = "button";
            b.dataset.cell = String(i);
            td.append(b);
            btn[i] = b;
            idx.push(i);
          } else if (gaps.has(s.tfs[ci])) {
            td.className = "inf";
            td.textContent = "\u25cc";
            td.title = where + W.inferred + ": " + W.inferredText;
          } else {
            td.className = "nm";
            td.textContent = "\u00b7";
            td.title = where + W.notMeasured + ": " + W.notMeasuredText;
          }
          tr.append(td);
          tds.push(td);
        }
        body.append(tr);
        const li = rowItem(si, trl, cellAt);
        list.append(li);
        rows.push({ tr: tr, li: li, tds: tds, cells: idx, byCol: byCol, trl: trl, shown: true });
      });
      wrap.append(t);
      sec.append(wrap, list);
      frag.append(sec);
      grids.push({ sec: sec, s: s, rows: rows, heads: heads, cols: s.tfs.map(() => true) });
    });
    $("grids").append(frag);
    $("grids").addEventListener("click", (e) => {
      const b = e.target.closest("button.cell, button.open");
      if (b) { openCell(Number(b.dataset.cell), true); return; }
      const a = e.target.closest("a.twin");
      if (a) { e.preventDefault(); goToRow(a.dataset.row); }
    });
  }

  // A linked row: brought into view and marked a moment, without touching the URL (the hash names cells).
  function goToRow(id) {
    const tr = document.getElementById(id);
    if (!tr) return;
    const small = matchMedia("(max-width: 500px)").matches;
    const row = grids.flatMap((g) => g.rows).find((r) => r.tr === tr);
    const target = small && row ? row.li : tr;
    target.scrollIntoView({ block: "center", inline: "nearest" });
    for (const x of document.querySelectorAll(".linked")) x.classList.remove("linked");
    target.classList.add("linked");
    (small ? target.querySelector("button, a") || target : tr.querySelector("th")).focus({ preventScroll: true });
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
    const key = new Array(D.cells.length);
    for (let i = 0; i < D.cells.length; i++) {
      const c = D.cells[i], b = btn[i], v = p.value(c);
      key[i] = v.k + " " + (v.cls || "") + v.sym + v.mark;
      b.className = "cell c-" + v.k + (v.cls ? " " + v.cls : "");
      b.textContent = v.sym;
      if (v.mark) b.append(el("span", v.mark, "mk"));
      const label = "TRL " + c.trl + " " + TIMES + " transformers " + c.transformers + ": " +
        (p.title ? p.title(c) : p.label + ": " + (v.text || c.status));
      b.title = label;
      b.setAttribute("aria-label", label);
      bad[i] = v.bad ? 1 : 0;
    }
    // Runs of one verdict along a row read as one range, as caniuse draws them: neighbours that show the same
    // thing join (no gap, no inner border) and the run's inner glyphs fade.
    for (const g of grids) {
      for (const r of g.rows) {
        r.byCol.forEach((i, ci) => {
          if (i < 0) return;
          const left = ci > 0 ? r.byCol[ci - 1] : -1, right = ci + 1 < r.byCol.length ? r.byCol[ci + 1] : -1;
          if (left >= 0 && key[left] === key[i]) btn[i].classList.add("jl");
          if (right >= 0 && key[right] === key[i]) btn[i].classList.add("jr");
        });
      }
    }
    drawLegend(p);
    filter();
  }

  // Version search: "0.23" narrows the TRL rows, "4.57" the transformers columns. A pasted pip line, a requirement
  // ("trl>=0.12,<0.13", "transformers[torch]==4.46.3"), "trl==A,transformers==B" or a cell id work too. Terms are
  // version prefixes; an unmeasured patch release (0.12.1) shows the measured releases of its minor instead.
  const TERM = /(?:\b(trl|transformers|tf)(?:\[[^\]]*\])?)?\s*(?:[=~<>!]=?=?|@)?\s*v?(\d+(?:\.[0-9a-z]+)*)/gi;
  const NOISE = /\b(?:pip3?|uv|python3?|install|add|-m|-u|--upgrade|trl|transformers|tf)\b|[\s'",;=<>~!@[\]()*&|-]+/gi;
  const axis = { rows: (s) => s.trls, cols: (s) => s.tfs };
  const anyOn = (which, t) => D.sections.some((s) => axis[which](s).some((v) => v.startsWith(t)));
  function parseQuery(text) {
    const q = { rows: [], cols: [], unknown: [], notes: [], words: "", understood: { rows: [], cols: [] } };
    const place = (which, t, name) => {
      if (anyOn(which, t)) { q[which].push(t); q.understood[which].push(name + " " + t); return true; }
      const parts = t.split(".");
      if (parts.length < 3) return false;
      const minor = parts.slice(0, 2).join(".") + ".";
      const near = [...new Set(D.sections.flatMap((s) => axis[which](s).filter((v) => v.startsWith(minor))))];
      if (!near.length) return false;
      q[which].push(minor);
      q.understood[which].push(name + " " + minor + "x");
      q.notes.push(name + " " + t + " was not measured; the measured " + minor.slice(0, -1) + " release" +
        (near.length > 1 ? "s are " : " is ") + near.join(", "));
      return true;
    };
    for (const m of text.toLowerCase().matchAll(TERM)) {
      const who = m[1], t = m[2];
      if (who === "trl") { if (!place("rows", t, "TRL")) q.unknown.push(t); }
      else if (who) { if (!place("cols", t, "transformers")) q.unknown.push(t); }
      else {
        const r = place("rows", t, "TRL"), c = place("cols", t, "transformers");
        if (!r && !c) q.unknown.push(t);
      }
    }
    q.words = text.replace(TERM, " ").replace(NOISE, " ").trim();
    // "cpu", "platform" or "triton": the cells that fail on CPU only (platform-bound).
    q.platform = /\b(?:cpu|platform|platform-bound|triton)\b/i.test(q.words);
    q.words = q.words.replace(/\b(?:cpu|platform|platform-bound|triton|fails?|on|only)\b/gi, " ").trim();
    return q;
  }
  const matches = (v, terms) => !terms.length || terms.some((t) => v.startsWith(t));

  function filter() {
    const failing = $("failing").checked;
    const box = $("search");
    const query = box.value.trim();
    // The box grows with what it holds, so a pasted pip line shows whole.
    box.style.width = Math.min(Math.max(box.value.length + 3, 26), 64) + "ch";
    const q = parseQuery(query);
    const found = q.rows.length + q.cols.length > 0;
    const none = q.unknown.length > 0 || (!found && q.words !== "");
    let shown = 0, rowsShown = 0, rowsAll = 0, onCpu = 0;
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
          const hide = (failing && !bad[i]) || (q.platform && !platformOf(D.cells[i]));
          if (btn[i].hidden !== hide) btn[i].hidden = hide;
          if (!hide && g.cols[D.cells[i].col]) { visible++; if (platformOf(D.cells[i])) onCpu++; }
        }
        const show = !none && matches(r.trl, q.rows) && (!(failing || q.platform) || visible > 0);
        if (show !== r.shown) { r.shown = show; r.tr.hidden = !show; r.li.hidden = !show; }
        rowsAll++;
        if (show) { rowsShown++; shown += visible; any = true; }
      }
      const secShow = any && g.cols.some(Boolean);
      if (g.sec.hidden === secShow) g.sec.hidden = !secShow;
    }
    const what = shown + " of " + D.cells.length + " cells shown";
    const said = [];
    if (q.unknown.length) said.push("no TRL or transformers version starts with " + q.unknown.join(", "));
    else if (none) said.push("nothing matches \u201c" + q.words + "\u201d: type a TRL or transformers version (0.12, 4.46.3), " +
      "or paste a pip line or a requirement");
    else {
      said.push(...q.notes);
      const understood = q.understood.rows.concat(q.understood.cols);  // TRL first, as a pair is written
      if (understood.length) said.push("showing " + understood.join(" " + TIMES + " "));
      if (q.platform) said.push("showing the cells that fail on CPU only (platform-bound, not broken as a pair)");
      said.push(query || failing ? what + " (" + rowsShown + " of " + rowsAll + " rows)" : what);
      if (onCpu && query) said.push(onCpu + " of them fail on CPU only (platform-bound, not measured on a GPU)");
    }
    $("shown").textContent = said.join("; ");
    $("shown").classList.toggle("miss", none);
  }

  // ------------------------------------------------------------------ detail
  function keywordRows(c) {
    return D.keywords.map((kw) => {
      const p = D.probes[PIDX["keyword." + kw]] || { values: {} };
      const st = pval(c, "keyword." + kw) || KS.UNTESTED;
      let by = (c.keyword_raised_by || {})[kw] || "";
      if (!by && st === KS.REJECTED && c.failure && c.failure.stage === D.sets.stage.CONSTRUCT) by = c.failure.raised_by || "";
      return [kw + "=", st, p.values[st] || "", st === KS.REJECTED ? by || "(not recorded)" : ""];
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
      return D.caseSets[f.set].includes(ci) ? CO.PASS : "\u2014";
    };
    const det = el("details");
    det.open = adapterFails;
    det.append(el("summary", failingCases.size + " cases where a formatter does not pass (per case, legacy vs adapter)"));
    // Cases a kto-compat formatter fails come first: they are the news; legacy failures are expected.
    const adapterBad = (ci) => kinds.some(([k, ki]) => k !== "legacy" && ![CO.PASS, "\u2014"].includes(outcome(ki, ci)));
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
      body.append(el("p", c.status === ST.UNRESOLVABLE || c.status === ST.ERROR
        ? "Not run: the cell never had an environment to run them in." : "No test outcomes were recorded.", "muted"));
      return;
    }
    const failed = t.failed || [];
    body.append(el("p", (t.passed || 0) + " passed, " + (t.skipped || 0) + " skipped (a skipped test is not counted as passed), " +
      failed.length + " failed."));
    if (failed.length) {
      table(body, ["test", "outcome", "first line of its message"], failed.map((f) => [f.id, f.outcome || TO.FAILED, firstLine(f.message)]));
    }
  }

  const RESOLUTION = D.resolutionWords, DRIFT_KIND = D.driftWords;

  // A cell's install line reproduces it: its lock, written by `kto-compat lock` and synced (Python spells it,
  // environments.install_line); a cell that installed nothing has the bare pair.
  function installLine(c) {
    return c.pip;
  }

  // What the line does, the lock file itself (published beside the page) and, for an as-of-release cell, how it resolved.
  function installWords(x, note) {
    note.replaceChildren(x.lock ? D.words.lockLine : x.env === undefined ? D.words.bareLine : D.words.unpublishedLine);
    if (x.lock) {
      const a = el("a", "locks/" + x.lock + ".txt", "lock-file");
      a.href = "locks/" + x.lock + ".txt";
      note.append("; the lock itself: ", a, " (uv pip sync it, or pip install -r it)");
    }
    if (x.resolved) note.append(". How it resolved: ", el("code", x.resolved, "resolved"));
  }
  // " (datasets 3.6.0)": a cell's further axes, said wherever its pair is named.
  const axesWords = (c) => {
    const parts = Object.entries(c.axes).map(([k, v]) => k + " " + v);
    return parts.length ? " (" + parts.join(", ") + ")" : "";
  };

  function fillDetail(i) {
    const c = D.cells[i];
    $("detail-title").textContent = "TRL " + c.trl + " " + TIMES + " transformers " + c.transformers + axesWords(c);
    let head = sym(c.status) + " " + c.status + (c.failure ? " at " + c.failure.stage + (c.failure.drift ? " (dependency drift)" : "") : "");
    if (c.status === ST.COMPATIBLE && c.use) head += ": hand the tokenizer over as " + c.use + "=tokenizer";
    if (platformOf(c)) head = sym(PF) + " " + ON_CPU() + " at " + c.failure.stage + ": " + platformOf(c) + ". Not broken as a pair: on a GPU it was not measured";
    const status = $("detail-status");
    status.textContent = head;
    status.className = "status-line c-" + (platformOf(c) ? PF : c.status);
    $("pip").textContent = installLine(c);
    for (const n of document.querySelectorAll(".copy-note")) n.textContent = "";
    installWords(c, $("install-note"));
    // A cell that does not train leads with the nearest one that does; its own line reproduces the failure.
    const near = c.near === undefined ? null : D.cells[c.near];
    $("works-instead").hidden = !near;
    $("install-label").textContent = c.status === ST.COMPATIBLE ? "Install this pair"
      : c.status === ST.ERROR ? "This pair (the harness failed here: rerun it; this says nothing about the pair)"
        : platformOf(c) ? "This pair: reproduces the failure on CPU (" + platformOf(c) + ")" : "This pair: reproduces the failure";
    if (near) {
      $("near-title").textContent = "Nearest measured working pair: TRL " + near.trl + " " + TIMES + " transformers " +
        near.transformers + axesWords(near) + (near.use ? ", hand the tokenizer over as " + near.use + "=" : "") +
        (near.resolution !== c.resolution ? " (resolution " + near.resolution + ")" : "");
      $("pip-ok").textContent = installLine(near);
      installWords(near, $("near-note"));
      $("near-open").dataset.cell = String(c.near);
    }
    const body = $("detail-body");
    body.replaceChildren();

    const facts = dlist(body);
    facts("cell id (permalink)", c.id);
    facts("trainer", c.trainer);
    facts("resolution", RESOLUTION[c.resolution] || c.resolution);
    for (const [k, v] of Object.entries(c.axes)) facts(k, v + " (an axis of this cell: pinned)");
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
      body.append(el("h3", c.status === ST.ERROR ? "Harness error" : "Error"));
      const f = dlist(body);
      f("stage", c.failure.stage);
      f("first line of the error", firstLine(c.failure.message));
      f("raised by", c.failure.raised_by);
      if (c.failure.fault) {
        f("fault", c.failure.fault + ": " + (D.faultWords[c.failure.fault] || "") + " (the harness failed; this says nothing about the pair)");
      }
      if (platformOf(c)) f("platform-bound (" + ON_CPU() + ")", platformOf(c) + "; measured again with that fact changed, " +
        "the failure moved, so it belongs to the platform; on a GPU this pair was not measured");
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
  function selectText(node) {
    const r = document.createRange();
    r.selectNodeContents(node);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(r);
  }
  function copyFrom(code, noteEl) {
    const text = code.textContent;
    const note = (t) => { noteEl.textContent = t; };
    const fallback = () => {
      selectText(code);
      let copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      note(copied ? "Copied." : "Selected: press Ctrl+C (\u2318C) to copy.");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(() => note("Copied to the clipboard."), () => { selectText(code); note("Selected: press Ctrl+C (\u2318C) to copy."); });
    } else {
      fallback();
    }
  }
  $("copy").addEventListener("click", () => copyFrom($("pip"), $("copy-note")));
  $("copy-ok").addEventListener("click", () => copyFrom($("pip-ok"), $("copy-ok-note")));
  // From a broken cell to its working neighbour: the same history entry, now naming the neighbour, so Back and
  // closing behave as they would have for the first cell (a permalink stays a permalink).
  $("near-open").addEventListener("click", (e) => {
    const i = Number(e.currentTarget.dataset.cell);
    showDetail(i);
    const id = D.cells[i].id;
    history.replaceState(history.state && history.state.cell ? { cell: id } : null, "", "#" + encodeURIComponent(id));
  });

  // ------------------------------------------------------------------ start
  performance.mark("compat:parsed");
  drawHeader();
  drawGrids();
  for (const p of PROBES) { const o = el("option", p.label); o.value = p.id; $("probe").append(o); }
  $("search").addEventListener("keydown", (e) => { if (e.key === "Escape") { e.target.value = ""; filter(); } });
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
