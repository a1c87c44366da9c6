/* rlm trace viewer: the agent tree with a timeline, one agent's iterations, search, live follow.
 *
 * Data: `api/runs` (list), `api/runs/<id>` (results JSON, or the server's fold of the events so
 * far), `api/runs/<id>/changes?after=SEQ` (live: the run's fields and the agents changed since,
 * folded by the server with the engine's own fold; the page only puts them in place). Opened
 * from disk (file://) it reads a dropped results file instead. Only the tree (one row per agent) is always in the DOM; an agent's iterations
 * are built when it is selected, a page at a time.
 */
(function () {
  "use strict";
  const NOT_RESULTS = " is not an rlm results file. To open a run's events (.events.jsonl), run `rlm view FILE`.";
  const $ = (id) => document.getElementById(id);
  const PAGE = 20;            // iteration cards rendered at a time
  const TEXT_LIMIT = 20000;   // characters of one text shown before "show all"
  const STATUSES = ["running", "completed", "budget", "timeout", "cancelled", "error", "failed"];

  const S = {
    runs: [], runId: null, results: null, byId: new Map(), kids: new Map(), order: [],
    collapsed: new Set(), selected: null, query: "", matches: null, matchList: [],
    live: false, followToken: 0, now: null, nowAt: 0, visible: [],
    detail: null, renderQueued: false, embedded: false,
  };

  // ---------------------------------------------------------------- small helpers
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const k in props) {
        const v = props[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.assign(el.dataset, v);
        else el.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  const t2s = (iso) => (iso ? Date.parse(iso) / 1000 : null);
  function fmtDur(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(1) + "s";
    const m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + "m " + String(sec).padStart(2, "0") + "s";
    return Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m";
  }
  function fmtTok(n) {
    n = n || 0;
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    return n >= 1000 ? (n / 1000).toFixed(1) + "k" : String(n);
  }
  const fmtCost = (usd) => ((usd || 0) < 1 ? "$" + (usd || 0).toFixed(4) : "$" + usd.toFixed(2));
  function fmtTime(iso) { // local HH:MM:SS (toLocaleTimeString is slow enough to matter on 200 rows)
    if (!iso) return "–";
    const d = new Date(iso), p = (n) => String(n).padStart(2, "0");
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  const statusClass = (s) => "s-" + (STATUSES.includes(s) ? s : "unknown");
  const oneLine = (s) => (s || "").replace(/\s+/g, " ").trim();
  const tokens = (u) => (u ? (u.prompt_tokens || 0) + (u.completion_tokens || 0) : 0);

  function toast(msg) {
    const el = h("div", { class: "toast", role: "alert", text: msg });
    document.body.appendChild(el);
    setTimeout(() => el.remove(), 5000);
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  // The end of the time axis while a run goes: the server's clock, unless no event has come for a
  // while (a run that died without a last word), then the last event.
  const STALE = 120;
  function nowEstimate() {
    if (S.now === null) return S.results ? S.results._t_last || null : null;
    const now = S.now + (performance.now() - S.nowAt) / 1000;
    const last = S.results && S.results._t_last;
    return last && now - last > STALE ? last : now;
  }

  // ---------------------------------------------------------------- model
  function index() {
    const res = S.results;
    S.byId = new Map();
    S.kids = new Map();
    for (const a of res.agents) {
      S.byId.set(a.id, a);
      if (!S.kids.has(a.parent || null)) S.kids.set(a.parent || null, []);
      S.kids.get(a.parent || null).push(a);
    }
    for (const list of S.kids.values()) list.sort(childOrder);
    S.order = [];
    const walk = (pid) => {
      for (const a of S.kids.get(pid) || []) { S.order.push(a); walk(a.id); }
    };
    walk(null);
    // agents whose parent is unknown (a truncated trace) still show, at the end
    for (const a of res.agents) if (a.parent && !S.byId.has(a.parent)) { S.order.push(a); walk(a.id); }
  }
  function childOrder(a, b) {
    return (a.parent_iteration || 0) - (b.parent_iteration || 0) || (a.index || 0) - (b.index || 0) ||
      ((a._t0 || 0) - (b._t0 || 0));
  }

  function span() {
    const res = S.results;
    const t0 = res._t0 || t2s(res.started_at) || (res.agents[0] && t2s(res.agents[0].started_at)) || 0;
    let t1 = t2s(res.finished_at);
    if (!t1) {
      t1 = t0;
      for (const a of res.agents) t1 = Math.max(t1, t2s(a.finished_at) || t2s(a.started_at) || t0);
      const now = S.live ? nowEstimate() : null;
      if (now) t1 = Math.max(t1, now);
    }
    return { t0, t1: Math.max(t1, t0 + 0.001) };
  }
  function agentSpan(a, end) {
    const s = a._t0 || t2s(a.started_at);
    const e = t2s(a.finished_at) || (a.status === "running" ? end : s);
    return [s, e];
  }

  // ---------------------------------------------------------------- search
  function haystack(a) {
    return (a.id + "\n" + (a.task || "") + "\n" + (a.result || "") + "\n" + (a.error || "")).toLowerCase();
  }
  function computeMatches() {
    const q = S.query.trim().toLowerCase();
    if (!q) { S.matches = null; S.matchList = []; $("search-count").textContent = ""; return; }
    S.matches = new Set();
    for (const a of S.order) if (haystack(a).includes(q)) S.matches.add(a.id);
    S.matchList = S.order.filter((a) => S.matches.has(a.id)).map((a) => a.id);
    $("search-count").textContent = S.matchList.length + " match" + (S.matchList.length === 1 ? "" : "es");
  }
  function highlight(text, q) {
    if (!q) return [text];
    const out = [], lower = text.toLowerCase();
    let i = 0, j;
    while ((j = lower.indexOf(q, i)) !== -1) {
      out.push(text.slice(i, j), h("mark", { text: text.slice(j, j + q.length) }));
      i = j + q.length;
    }
    out.push(text.slice(i));
    return out;
  }

  // ---------------------------------------------------------------- tree + timeline
  function visibleAgents() {
    const show = [];
    let keep = null;
    if (S.matches) {
      keep = new Set();
      for (const id of S.matches) {
        let a = S.byId.get(id);
        while (a && !keep.has(a.id)) { keep.add(a.id); a = S.byId.get(a.parent); }
      }
    }
    const hidden = (a) => {
      for (let p = S.byId.get(a.parent); p; p = S.byId.get(p.parent)) if (S.collapsed.has(p.id) && !keep) return true;
      return false;
    };
    for (const a of S.order) {
      if (keep ? keep.has(a.id) : !hidden(a)) show.push(a);
    }
    return show;
  }

  function renderTree() {
    const tree = $("tree");
    const { t0, t1 } = span();
    const total = t1 - t0;
    const now = nowEstimate() || t1;
    const q = S.query.trim().toLowerCase();
    S.visible = visibleAgents();
    const frag = document.createDocumentFragment();
    for (const a of S.visible) {
      const kids = S.kids.get(a.id) || [];
      const open = !S.collapsed.has(a.id) || !!S.matches;
      const [s, e] = agentSpan(a, now);
      const bar = h("div", { class: "bar " + statusClass(a.status),
        title: a.id + " · " + fmtTime(a.started_at) + " → " + (a.finished_at ? fmtTime(a.finished_at) : "running") +
          " (" + fmtDur(e - s) + ")" });
      bar.style.left = (((s - t0) / total) * 100).toFixed(3) + "%";
      bar.style.width = Math.max(0, ((e - s) / total) * 100).toFixed(3) + "%";
      const name = h("div", { class: "name" },
        h("span", { class: "twisty" + (kids.length ? " has" : ""), dataset: { toggle: a.id } },
          kids.length ? (open ? "▾" : "▸") : ""),
        h("span", { class: "dot", title: a.status || "" }),
        h("span", { class: "aid" }, a.id),
        a.parent ? h("span", { class: "from", title: "spawned in iteration " + a.parent_iteration + " of " + a.parent }, "it " + a.parent_iteration) : null,
        h("span", { class: "task", title: a.task || "" }, highlight(oneLine(a.task), q)));
      name.style.paddingLeft = 6 + a.depth * 16 + "px";
      const row = h("div", {
        class: "row grid " + statusClass(a.status) + (a.id === S.selected ? " sel" : "") +
          (S.matches && !S.matches.has(a.id) ? " dim" : ""),
        role: "treeitem", id: "row-" + a.id, "aria-level": a.depth + 1,
        "aria-selected": a.id === S.selected ? "true" : "false",
        "aria-expanded": kids.length ? String(open) : null, dataset: { id: a.id },
      }, name,
      h("div", { class: "num" }, String(a.iterations.length)),
      h("div", { class: "num" }, fmtDur(a.duration !== null && a.duration !== undefined ? a.duration : (a.status === "running" ? now - s : null))),
      h("div", { class: "num" }, fmtTok(tokens(a.usage))),
      h("div", { class: "num" }, fmtCost(a.usage && a.usage.cost_usd)),
      h("div", { class: "tl" }, bar));
      frag.appendChild(row);
    }
    tree.replaceChildren(frag);
    if (S.selected) tree.setAttribute("aria-activedescendant", "row-" + S.selected);
    cancelAnimationFrame(S.axisFrame);
    S.axisFrame = requestAnimationFrame(() => renderAxis(t0, t1, now)); // after layout, not forcing it
  }

  function niceStep(total, n) {
    const raw = total / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }

  function renderAxis(t0, t1, now) {
    const axis = $("axis"), canvas = $("concurrency");
    if (!S.results || axis.offsetParent === null) return;
    axis.querySelectorAll(".tick,.peak").forEach((n) => n.remove());
    const total = t1 - t0, step = niceStep(total, 4);
    for (let x = step; x < total * 0.9; x += step) {
      const tick = h("span", { class: "tick" }, fmtDur(x).replace(".0s", "s"));
      tick.style.left = ((x / total) * 100).toFixed(2) + "%";
      axis.appendChild(tick);
    }
    // agents running over time: a step chart, so parallelism shows at a glance
    const w = Math.max(10, axis.clientWidth), hgt = 16, dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    const marks = [];
    for (const a of S.results.agents) {
      const [s, e] = agentSpan(a, now);
      marks.push([s, 1], [Math.max(e, s), -1]);
    }
    marks.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let cur = 0, peak = 0;
    const pts = [];
    for (const [t, d] of marks) { cur += d; peak = Math.max(peak, cur); pts.push([t, cur]); }
    if (!peak) return;
    const style = getComputedStyle(document.documentElement);
    ctx.fillStyle = style.getPropertyValue("--accent").trim() || "#0969da";
    ctx.globalAlpha = 0.35;
    ctx.beginPath();
    ctx.moveTo(0, hgt);
    let prevY = hgt;
    for (const [t, c] of pts) {
      const x = ((t - t0) / total) * w, y = hgt - (c / peak) * (hgt - 2);
      ctx.lineTo(x, prevY); ctx.lineTo(x, y); prevY = y;
    }
    ctx.lineTo(w, prevY); ctx.lineTo(w, hgt); ctx.closePath(); ctx.fill();
    axis.appendChild(h("span", { class: "peak", title: "most agents running at once" }, "≤" + peak + " parallel"));
  }

  // ---------------------------------------------------------------- totals + title
  function renderTotals() {
    const r = S.results, t = r.totals;
    const stat = (label, value, cls) => h("div", { class: "stat" + (cls ? " " + cls : "") }, h("b", null, value), h("small", null, label));
    let dur = r.duration;
    if ((dur === null || dur === undefined) && S.live) { const sp = span(); dur = sp.t1 - sp.t0; }
    const patch = r.patch;
    $("totals").replaceChildren(...[
      stat("status", h("span", { class: "pill " + statusClass(r.status) }, r.status || "–"), "status"),
      stat("agents", String(t.agents)), stat("max depth", String(t.max_depth)),
      stat("iterations", String(t.iterations)), stat("code blocks", String(t.code_blocks)),
      stat("llm calls", String(t.llm_calls)), stat("wall time", fmtDur(dur)),
      stat("tokens in / out", fmtTok(t.prompt_tokens) + " / " + fmtTok(t.completion_tokens)),
      stat("cost", fmtCost(t.cost_usd)), stat("sandboxes", String(t.sandboxes)),
      setupStat(r.setup, stat),
      patch ? stat("patch", patch.files + (patch.files === 1 ? " file" : " files") + " +" + patch.additions + " −" + patch.deletions) : null,
    ].filter(Boolean));
    $("totals").hidden = false;
    const title = $("run-title");
    title.replaceChildren(
      h("span", { class: "prompt", title: r.prompt || "" }, oneLine(r.prompt) || r.run_id || "run"),
      h("span", { class: "meta", title: [r.repo, r.commit, r.model].filter(Boolean).join("\n") },
        [[r.repo, r.commit ? r.commit.slice(0, 10) : null].filter(Boolean).join(" @ "), r.model].filter(Boolean).join(" · ")));
    document.title = (r.status === "running" ? "(running) " : "") + (oneLine(r.prompt).slice(0, 60) || "rlm trace");
  }

  /* The environment setup: how it went; its commands and log tail on hover. */
  function setupStat(setup, stat) {
    if (!setup || setup.status === "skipped") return null;
    const how = setup.status === "ok" ? (setup.cached ? "cached" : "built " + fmtDur(setup.build_duration)) : setup.status;
    const el = stat("environment", "🧰 " + how, setup.status === "ok" || setup.status === "running" ? "" : "bad");
    el.title = (setup.commands || []).map((c) => "$ " + c).join("\n") + (setup.log_tail ? "\n\n" + setup.log_tail : "");
    return el;
  }

  function renderLive() {
    const el = $("live");
    el.hidden = !S.live;
    if (!S.live) return;
    const last = S.results && S.results._t_last;
    const idle = S.now !== null && last ? S.now + (performance.now() - S.nowAt) / 1000 - last : 0;
    el.classList.toggle("idle", idle > 30);
    el.textContent = idle > 30 ? "live · quiet for " + fmtDur(idle) : "live";
  }

  // ---------------------------------------------------------------- details of one agent
  const PY = /(#[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|[rbfuRBFU]{0,2}"(?:\\.|[^"\\\n])*"|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*')|\b(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\b|\b(def|class|return|if|elif|else|for|while|in|not|and|or|is|import|from|as|with|try|except|finally|raise|lambda|yield|pass|break|continue|None|True|False|global|nonlocal|assert|del|async|await)\b|\b(FINAL_VAR|FINAL|rlm_query_batched|rlm_query|llm_query|edit_file|apply_patch|print)\b/g;
  function highlightPython(code) {
    const frag = document.createDocumentFragment();
    if (code.length > TEXT_LIMIT) { frag.appendChild(document.createTextNode(code)); return frag; }
    let last = 0, m;
    PY.lastIndex = 0;
    while ((m = PY.exec(code)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(code.slice(last, m.index)));
      const cls = m[1] ? "com" : m[2] ? "str" : m[3] ? "num" : m[4] ? "kw" : "fn";
      frag.appendChild(h("span", { class: "tok-" + cls }, m[0]));
      last = m.index + m[0].length;
    }
    frag.appendChild(document.createTextNode(code.slice(last)));
    return frag;
  }

  function textBox(text, cls) {
    const pre = h("pre", { class: "box " + (cls || "") });
    if (text.length <= TEXT_LIMIT) { pre.textContent = text; return pre; }
    pre.textContent = text.slice(0, TEXT_LIMIT);
    const more = h("button", { class: "link", onclick: () => { pre.textContent = text; more.remove(); } },
      "show all " + text.length.toLocaleString() + " characters");
    return h("div", null, pre, more);
  }

  function blockView(b, i) {
    const failed = !!b.error;
    const head = h("div", { class: "bh" },
      h("span", null, "block " + (i + 1)), h("span", null, fmtDur(b.duration)),
      b.final ? h("span", { class: "final-tag" }, "FINAL") : null,
      failed ? h("span", { class: "err-tag" }, "error") : null);
    const code = h("pre", { class: "box code" });
    code.appendChild(highlightPython(b.code || ""));
    const outs = [];
    for (const [key, label] of [["stdout", "stdout"], ["stderr", "stderr"], ["error", "error"]]) {
      if (b[key]) outs.push(h("div", { class: "out " + key }, h("div", { class: "out-label" }, label), textBox(String(b[key]))));
    }
    if (!outs.length) outs.push(h("div", { class: "out" }, h("div", { class: "out-label" }, "no output")));
    return h("div", { class: "block" }, head, code, outs);
  }

  // The response as a notebook: its prose, with each python fence replaced by the block that ran.
  const FENCE = /```(?:python|py)[ \t]*\r?\n([\s\S]*?)(?:^|\n)[ \t]*```/gm;
  function responseView(it) {
    const text = it.response || "", out = [];
    let last = 0, n = 0, m;
    FENCE.lastIndex = 0;
    while ((m = FENCE.exec(text)) !== null) {
      if (!m[1].trim()) continue;
      const prose = text.slice(last, m.index).trim();
      if (prose) out.push(h("div", { class: "prose" }, prose));
      const b = it.blocks[n];
      if (b) out.push(blockView(b, n));
      else {
        const pre = h("pre", { class: "box code" });
        pre.appendChild(highlightPython(m[1]));
        out.push(h("div", { class: "block notrun" }, h("div", { class: "bh" }, "not run (an earlier block ended the iteration)"), pre));
      }
      n++;
      last = m.index + m[0].length;
    }
    const tail = text.slice(last).trim();
    if (tail) out.push(h("div", { class: "prose" }, tail.length > TEXT_LIMIT ? tail.slice(0, TEXT_LIMIT) + " …" : tail));
    for (; n < it.blocks.length; n++) out.push(blockView(it.blocks[n], n));
    return out;
  }

  function chip(id) {
    const a = S.byId.get(id);
    return h("span", { class: "chip " + statusClass(a && a.status), role: "link", tabindex: "0", dataset: { go: id },
      title: a ? oneLine(a.task) : id }, h("span", { class: "dot" }), id);
  }

  function iterSignature(it) {
    return [it.blocks.length, it.children.length, (it.response || "").length, it.duration].join("|");
  }

  function iterationCard(it, open) {
    const u = it.usage || {};
    const summary = h("summary", null,
      h("b", null, "Iteration " + it.n), h("span", { title: "time of the model call" }, "model " + fmtDur(it.duration)),
      h("span", null, fmtTok(u.prompt_tokens) + " in · " + fmtTok(u.completion_tokens) + " out"),
      h("span", null, it.blocks.length + " block" + (it.blocks.length === 1 ? "" : "s")),
      it.children.length ? h("span", null, "→ " + it.children.length + " sub-agent" + (it.children.length === 1 ? "" : "s")) : null,
      it.blocks.some((b) => b.final) ? h("span", { class: "final-tag" }, "FINAL") : null,
      it.blocks.some((b) => b.error) ? h("span", { class: "err-tag" }, "error") : null);
    const card = h("details", { class: "iter", open: open, dataset: { n: it.n, sig: iterSignature(it) } }, summary);
    const fill = () => {
      if (card.dataset.filled) return;
      card.dataset.filled = "1";
      const prompt = h("details", { class: "sub" }, h("summary", null, "Prompt (" + (it.prompt || "").length.toLocaleString() + " chars)"));
      prompt.addEventListener("toggle", () => {
        if (prompt.open && prompt.childNodes.length === 1) prompt.appendChild(textBox(it.prompt || "", "wrap"));
      }, { once: true });
      const raw = h("details", { class: "sub" }, h("summary", null, "Raw response"));
      raw.addEventListener("toggle", () => {
        if (raw.open && raw.childNodes.length === 1) raw.appendChild(textBox(it.response || "", "wrap"));
      }, { once: true });
      const body = h("div", { class: "iter-body" }, prompt, responseView(it),
        it.children.length ? h("div", { class: "section-kids" }, h("h3", null, "Spawned here"), h("div", { class: "kids" }, it.children.map(chip))) : null,
        raw);
      card.appendChild(body);
    };
    if (open) fill();
    else card.addEventListener("toggle", fill, { once: true });
    return card;
  }

  function detailHead(a) {
    const u = a.usage || {};
    const parent = a.parent
      ? h("span", null, "spawned by ", h("button", { class: "link", dataset: { go: a.parent } }, a.parent),
        " in iteration " + a.parent_iteration + (a.index !== null && a.index !== undefined ? " (task " + (a.index + 1) + ")" : ""))
      : h("span", null, "root agent");
    return h("div", { class: "d-head" },
      h("div", { class: "d-title" }, h("span", { class: "pill " + statusClass(a.status) }, a.status || "–"), h("h2", null, a.id), parent),
      h("div", { class: "d-facts" },
        h("span", null, h("b", null, String(a.iterations.length)), " iterations"),
        h("span", null, h("b", null, a.duration !== null && a.duration !== undefined ? fmtDur(a.duration)
          : a.status === "running" && nowEstimate() ? fmtDur(nowEstimate() - (a._t0 || t2s(a.started_at))) + " so far" : "–"), " time"),
        h("span", null, h("b", null, fmtTok(u.prompt_tokens)), " in · ", h("b", null, fmtTok(u.completion_tokens)), " out"),
        h("span", null, h("b", null, fmtCost(u.cost_usd))),
        h("span", null, "depth ", h("b", null, String(a.depth))),
        h("span", null, fmtTime(a.started_at) + " → " + (a.finished_at ? fmtTime(a.finished_at) : "…")),
        a.sandbox ? h("span", { title: "sandbox" + (a.sandbox_seconds ? ", created in " + fmtDur(a.sandbox_seconds) : "") },
          h("span", { class: "mono" }, a.sandbox)) : null));
  }

  function detailTop(a) {
    const kids = S.kids.get(a.id) || [];
    return h("div", { class: "d-top" },
      h("div", { class: "section" }, h("h3", null, "Task"), h("p", { class: "text" }, a.task || "")),
      a.result !== null && a.result !== undefined
        ? h("div", { class: "section" }, h("h3", null, "Final answer"), h("div", { class: "answer" }, h("p", { class: "text" }, String(a.result))))
        : null,
      a.error ? h("div", { class: "section" }, h("h3", null, "Error"), h("div", { class: "answer bad" }, h("p", { class: "text" }, a.error))) : null,
      a.patch ? diffPanel(a) : null,
      !a.parent && S.results.report ? h("div", { class: "section" }, h("details", { class: "report" },
        h("summary", null, h("h3", null, "Report")), textBox(String(S.results.report), "wrap"))) : null,
      kids.length ? h("div", { class: "section" }, h("h3", null, "Sub-agents (" + kids.length + ")"), h("div", { class: "kids" }, kids.map((k) => chip(k.id)))) : null,
      h("div", { class: "section" }, h("h3", null, "Iterations")));
  }

  // What a sub-agent changed (the diff the host took from its checkout and handed to its parent).
  function diffPanel(a) {
    const st = a.patch_stats || {};
    const pre = h("pre", { class: "box diff" });
    const text = String(a.patch);
    for (const line of text.slice(0, TEXT_LIMIT).split("\n")) {
      const cls = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "meta"
        : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
      pre.appendChild(cls ? h("span", { class: "d-" + cls }, line + "\n") : document.createTextNode(line + "\n"));
    }
    const label = "Changes (" + (st.files || 0) + " file" + (st.files === 1 ? "" : "s") + ", +" + (st.additions || 0) + " −" + (st.deletions || 0) + ")";
    return h("div", { class: "section" }, h("details", { class: "diff-panel" }, h("summary", null, h("h3", null, label)), pre,
      text.length > TEXT_LIMIT ? h("p", { class: "text" }, "… " + (text.length - TEXT_LIMIT).toLocaleString() + " more characters in the results file") : null));
  }

  function renderDetail(force) {
    const pane = $("detail");
    const a = S.byId.get(S.selected);
    if (!a) {
      S.detail = null;
      pane.replaceChildren(h("div", { class: "empty" }, "Select an agent to see its iterations."));
      return;
    }
    const d = S.detail;
    if (!force && d && d.id === a.id) return updateDetail(a);
    const list = h("div", { class: "iters" });
    S.detail = { id: a.id, list, shown: 0, total: a.iterations.length, head: detailHead(a), top: detailTop(a),
      topSig: topSignature(a) };
    const more = h("div", { class: "more" });
    S.detail.more = more;
    pane.replaceChildren(S.detail.head, S.detail.top, list, more);
    showMore();
    pane.scrollTop = 0;
  }
  function topSignature(a) {
    return [a.status, a.result, a.error, a.patch ? a.patch.length : 0, (S.kids.get(a.id) || []).map((k) => k.id + k.status).join(",")].join("|");
  }
  function showMore() {
    const d = S.detail, a = S.byId.get(d.id);
    const n = a.iterations.length, open = n <= 60;
    const end = Math.min(n, d.shown + PAGE);
    for (let i = d.shown; i < end; i++) d.list.appendChild(iterationCard(a.iterations[i], open || i >= n - 3));
    d.shown = end;
    d.more.replaceChildren();
    if (d.shown < n) {
      const btn = h("button", { class: "iconbtn", onclick: showMore }, "Show " + Math.min(PAGE, n - d.shown) + " more of " + (n - d.shown) + " iterations");
      d.more.appendChild(btn);
      if ("IntersectionObserver" in window) {
        const io = new IntersectionObserver((entries) => {
          if (entries.some((e) => e.isIntersecting)) { io.disconnect(); if (btn.isConnected) showMore(); }
        }, { root: $("detail"), rootMargin: "400px" });
        io.observe(btn);
      }
    }
  }
  // live: keep the reader's place; replace only what changed
  function updateDetail(a) {
    const d = S.detail, pane = $("detail");
    const head = detailHead(a);
    pane.replaceChild(head, d.head); d.head = head;
    const sig = topSignature(a);
    if (sig !== d.topSig) { const top = detailTop(a); pane.replaceChild(top, d.top); d.top = top; d.topSig = sig; }
    const cards = d.list.children;
    for (let i = 0; i < Math.min(d.shown, a.iterations.length); i++) {
      const it = a.iterations[i];
      if (cards[i] && cards[i].dataset.sig !== iterSignature(it)) d.list.replaceChild(iterationCard(it, cards[i].open), cards[i]);
    }
    if (d.shown >= d.total && d.shown < a.iterations.length) showMore(); // the reader was at the end: follow
    d.total = a.iterations.length;
  }

  // ---------------------------------------------------------------- selection + navigation
  function select(id, opts) {
    if (!S.byId.has(id)) return;
    if (id === S.selected && S.detail && S.detail.id === id) { // already shown: keep the reader's place
      if (opts && opts.focusTree) $("tree").focus({ preventScroll: true });
      return;
    }
    const prev = S.selected;
    S.selected = id;
    // reveal it
    let changed = false;
    for (let p = S.byId.get(S.byId.get(id).parent); p; p = S.byId.get(p.parent)) {
      if (S.collapsed.delete(p.id)) changed = true;
    }
    if (changed) renderTree();
    else {
      const old = prev && document.getElementById("row-" + prev);
      if (old) { old.classList.remove("sel"); old.setAttribute("aria-selected", "false"); }
    }
    const row = document.getElementById("row-" + id);
    if (row) {
      row.classList.add("sel"); row.setAttribute("aria-selected", "true");
      $("tree").setAttribute("aria-activedescendant", row.id);
      row.scrollIntoView({ block: "nearest" });
    }
    renderDetail(true);
    writeHash();
    if (opts && opts.focusTree) $("tree").focus({ preventScroll: true });
  }

  function move(delta) {
    const list = S.visible;
    if (!list.length) return;
    let i = list.findIndex((a) => a.id === S.selected);
    i = i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + delta));
    select(list[i].id);
  }

  function toggle(id, open) {
    if (!(S.kids.get(id) || []).length) return false;
    const isOpen = !S.collapsed.has(id);
    const want = open === undefined ? !isOpen : open;
    if (want === isOpen) return false;
    if (want) S.collapsed.delete(id); else S.collapsed.add(id);
    renderTree();
    return true;
  }

  function onTreeKey(e) {
    const a = S.byId.get(S.selected);
    const k = e.key;
    if (k === "ArrowDown" || k === "j") move(1);
    else if (k === "ArrowUp" || k === "k") move(-1);
    else if (k === "Home") move(-1e9);
    else if (k === "End") move(1e9);
    else if ((k === "ArrowRight" || k === "l") && a) {
      if (!toggle(a.id, true)) { const kids = S.kids.get(a.id) || []; if (kids.length) select(kids[0].id); }
    } else if ((k === "ArrowLeft" || k === "h") && a) {
      if (!toggle(a.id, false) && a.parent) select(a.parent);
    } else if (k === "p" && a && a.parent) select(a.parent);
    else if (k === "Enter" && a) $("detail").focus();
    else return;
    e.preventDefault();
  }

  function onGlobalKey(e) {
    const inField = e.target.matches && e.target.matches("input, select, textarea");
    if (e.key === "Escape") {
      if (!$("help").hidden) { $("help").hidden = true; return; }
      if (S.query) { $("search").value = ""; setQuery(""); }
      if (inField) $("tree").focus();
      return;
    }
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "/") { e.preventDefault(); $("search").focus(); $("search").select(); }
    else if (e.key === "?") { $("help").hidden = !$("help").hidden; }
    else if (e.key === "[" || e.key === "]") {
      const open = e.key === "]";
      $("detail").querySelectorAll("details.iter").forEach((d) => { d.open = open; });
    } else if (document.activeElement === document.body && S.results && ["ArrowDown", "ArrowUp", "j", "k"].includes(e.key)) {
      $("tree").focus(); onTreeKey(e);
    }
  }

  function setQuery(q) {
    S.query = q;
    computeMatches();
    renderTree();
  }

  function onSearchKey(e) {
    if (e.key !== "Enter" || !S.matchList.length) return;
    e.preventDefault();
    let i = S.matchList.indexOf(S.selected);
    i = e.shiftKey ? (i <= 0 ? S.matchList.length - 1 : i - 1) : (i + 1) % S.matchList.length;
    select(S.matchList[i]);
  }

  // ---------------------------------------------------------------- hash state
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return { run: p.get("run"), agent: p.get("agent") };
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (S.runId && !S.embedded) p.set("run", S.runId);
    if (S.selected) p.set("agent", S.selected);
    history.replaceState(null, "", "#" + p.toString());
  }

  // ---------------------------------------------------------------- loading + live follow
  function show(which) {
    $("main").hidden = which !== "run";
    $("totals").hidden = which !== "run";
    $("runs-page").hidden = which !== "runs";
    $("open-page").hidden = which !== "open";
  }

  function emptyResults(id) {
    return { run_id: id, status: "running", totals: {}, agents: [], _seq: 0 };
  }

  /* The server's changes since our `_seq`: the run's fields, and whole agents replaced or added. */
  function applyChanges(results, changes) {
    const pos = new Map(results.agents.map((a, i) => [a.id, i]));
    Object.assign(results, changes.run);
    for (const agent of changes.agents) {
      if (pos.has(agent.id)) results.agents[pos.get(agent.id)] = agent;
      else { pos.set(agent.id, results.agents.length); results.agents.push(agent); }
    }
  }

  function setResults(data) {
    if (data._seq === undefined) data._seq = 0;
    S.results = data;
    index();
    computeMatches();
    show("run");
    renderAll();
    if (!S.selected || !S.byId.has(S.selected)) {
      const want = readHash().agent;
      S.selected = S.byId.has(want) ? want : (S.order[0] && S.order[0].id) || null;
      renderTree();
    }
    renderDetail(true);
    const row = S.selected && document.getElementById("row-" + S.selected);
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  function renderAll() {
    renderTotals();
    renderTree();
    renderLive();
  }

  function scheduleRender() {
    if (S.renderQueued) return;
    S.renderQueued = true;
    requestAnimationFrame(() => {
      S.renderQueued = false;
      index();
      computeMatches();
      renderAll();
      if (S.selected && !S.byId.has(S.selected)) S.selected = null;
      if (!S.selected && S.order.length) { S.selected = S.order[0].id; renderTree(); }
      renderDetail(false);
    });
  }

  async function openRun(id) {
    S.runId = id;
    S.selected = readHash().run === id || S.embedded ? readHash().agent : null;
    S.collapsed = new Set();
    S.live = false;
    const token = ++S.followToken;
    $("run-select").value = id;
    let data;
    try {
      data = await getJSON("api/runs/" + encodeURIComponent(id));
    } catch (err) {
      toast("Could not load run " + id + ": " + err.message);
      return;
    }
    if (token !== S.followToken) return;
    if (data.status === "running" && data._seq === undefined) {
      // a results file written mid-run cannot be continued: rebuild it from the events
      data = emptyResults(id);
    }
    setResults(data);
    writeHash();
    if (data.status === "running") follow(id, token);
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function follow(id, token) {
    S.live = true;
    renderLive();
    let quiet = 0;
    while (token === S.followToken) {
      let r;
      try {
        r = await getJSON("api/runs/" + encodeURIComponent(id) + "/changes?after=" + S.results._seq);
      } catch (err) {
        await sleep(3000);
        continue;
      }
      if (token !== S.followToken) return;
      S.now = r.now; S.nowAt = performance.now();
      if (!r.live) { // the results file exists: load it
        S.live = false;
        return openRun(id);
      }
      const moved = r.run._seq !== S.results._seq;
      applyChanges(S.results, r);
      if (moved) quiet = 0; else quiet++;
      const finished = S.results.status !== "running";
      if (finished) S.live = false;
      scheduleRender();
      if (finished) return;
      await sleep(r.more ? 0 : moved ? 400 : quiet > 30 ? 3000 : 1000);
    }
  }

  // a running bar keeps growing between events
  setInterval(() => {
    if (S.live && S.results && !document.hidden) { renderTree(); renderTotals(); renderLive(); }
  }, 2000);

  function renderRuns() {
    const body = $("runs-body");
    body.replaceChildren(...S.runs.map((r) => {
      const t = r.totals || {};
      const tr = h("tr", { tabindex: "0", dataset: { run: r.id } },
        h("td", null, h("span", { class: "pill " + statusClass(r.status) }, r.status || "–")),
        h("td", { class: "mono" }, r.id),
        h("td", null, r.started_at ? new Date(r.started_at).toLocaleString() : "–"),
        h("td", { class: "p" }, oneLine(r.prompt)),
        h("td", null, String(t.agents || 0)), h("td", null, String(t.iterations || 0)),
        h("td", null, fmtDur(r.duration)), h("td", null, fmtCost(t.cost_usd)));
      return tr;
    }));
    const sel = $("run-select");
    sel.replaceChildren(h("option", { value: "" }, "All runs…"),
      ...S.runs.map((r) => h("option", { value: r.id }, r.id + (r.status === "running" ? " (running)" : ""))));
    sel.hidden = S.runs.length < 2;
    if (S.runId) sel.value = S.runId;
  }

  async function loadRuns() {
    try {
      S.runs = await getJSON("api/runs");
    } catch (err) {
      return false;
    }
    renderRuns();
    return true;
  }

  function showRunList() {
    S.runId = null; S.live = false; S.followToken++;
    renderLive();
    show("runs");
    $("run-title").replaceChildren(h("span", { class: "prompt" }, S.runs.length + " runs"));
    history.replaceState(null, "", "#");
    const first = $("runs-body").querySelector("tr");
    if (first) first.focus();
  }

  // ---------------------------------------------------------------- opening a file from disk
  function openText(name, text) {
    let data = null;
    try {
      const parsed = JSON.parse(text);
      if (parsed && Array.isArray(parsed.agents)) data = parsed;
    } catch (e) { /* not one JSON document */ }
    if (!data) {
      $("open-msg").textContent = name + NOT_RESULTS;
      return;
    }
    S.runId = data.run_id; S.embedded = true;
    setResults(data);
  }
  function setupOpenFile() {
    show("open");
    const drop = $("drop");
    const read = (file) => file && file.text().then((t) => openText(file.name, t));
    $("file-input").addEventListener("change", (e) => read(e.target.files[0]));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); read(e.dataTransfer.files[0]); });
  }

  // ---------------------------------------------------------------- wiring
  function wire() {
    const tree = $("tree");
    tree.addEventListener("click", (e) => {
      const tw = e.target.closest("[data-toggle]");
      if (tw && tw.classList.contains("has")) { toggle(tw.dataset.toggle); return; }
      const row = e.target.closest(".row");
      if (row) select(row.dataset.id, { focusTree: true });
    });
    tree.addEventListener("keydown", onTreeKey);
    $("detail").addEventListener("click", (e) => {
      const go = e.target.closest("[data-go]");
      if (go) select(go.dataset.go);
    });
    $("detail").addEventListener("keydown", (e) => {
      const go = e.target.closest && e.target.closest("[data-go]");
      if (go && e.key === "Enter") select(go.dataset.go, { focusTree: true });
    });
    let timer = null;
    $("search").addEventListener("input", (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => setQuery(e.target.value), 80);
    });
    $("search").addEventListener("keydown", onSearchKey);
    document.addEventListener("keydown", onGlobalKey);
    $("help-btn").addEventListener("click", () => { $("help").hidden = false; });
    $("help").addEventListener("click", (e) => { if (e.target === $("help")) $("help").hidden = true; });
    $("run-select").addEventListener("change", (e) => (e.target.value ? openRun(e.target.value) : showRunList()));
    const runsBody = $("runs-body");
    runsBody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) openRun(tr.dataset.run); });
    runsBody.addEventListener("keydown", (e) => {
      const tr = e.target.closest("tr");
      if (!tr) return;
      if (e.key === "Enter") openRun(tr.dataset.run);
      else if (e.key === "ArrowDown" && tr.nextElementSibling) tr.nextElementSibling.focus();
      else if (e.key === "ArrowUp" && tr.previousElementSibling) tr.previousElementSibling.focus();
    });
    // draggable splitter between the tree and the details
    const split = $("splitter"), main = $("main");
    split.addEventListener("pointerdown", (e) => {
      split.setPointerCapture(e.pointerId); split.classList.add("drag");
      const move = (ev) => {
        const x = Math.min(Math.max(ev.clientX, 320), window.innerWidth - 280);
        main.style.gridTemplateColumns = x + "px 5px minmax(0, 1fr)";
      };
      const up = () => { split.classList.remove("drag"); split.removeEventListener("pointermove", move); if (S.results) renderTree(); };
      split.addEventListener("pointermove", move);
      split.addEventListener("pointerup", up, { once: true });
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (S.results && !$("main").hidden) renderTree(); }, 150);
    });
  }

  async function start() {
    wire();
    if (location.protocol === "file:") return setupOpenFile();
    if (!(await loadRuns())) return setupOpenFile();
    S.embedded = S.runs.length === 1;
    const want = readHash().run;
    const run = S.runs.find((r) => r.id === want) || (S.runs.length === 1 ? S.runs[0] : null);
    if (run) await openRun(run.id);
    else if (!S.runs.length) {
      show("runs");
      $("run-title").replaceChildren(h("span", { class: "meta" }, "No run to show yet; this page checks every few seconds."));
    } else showRunList();
    // new runs appear in the list while it is shown; the first run of an empty page opens by itself
    const waiting = !S.runs.length;
    setInterval(async () => {
      if (S.runId || document.hidden) return;
      if ((await loadRuns()) && waiting && S.runs.length === 1 && !S.runId) {
        S.embedded = true;
        openRun(S.runs[0].id);
      }
    }, 3000);
  }

  window.rlmViewer = { state: S, select, setQuery };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
