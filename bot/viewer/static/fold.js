/* The engine's results fold (bot/rlm/trace.py: fold), line for line in JavaScript.
 *
 * The live viewer continues the server's fold with each new event, so both must build the same
 * results; tests/test_viewer_fold_js.py runs this file under node against the Python fold.
 * Works in the browser (window.RlmFold) and under node (module.exports).
 */
(function (root) {
  "use strict";

  function newResults(runId) {
    return {
      version: 1, run_id: runId || "", status: "running", error: null, answer: null, report: null, repo: null,
      commit: null, branch: null, prompt: null, model: null, sandbox: null, config: {},
      started_at: null, finished_at: null, duration: null, patch: null,
      totals: {
        agents: 0, max_depth: 0, iterations: 0, llm_calls: 0, code_blocks: 0,
        prompt_tokens: 0, completion_tokens: 0, cost_usd: 0.0, sandboxes: 0,
      },
      agents: [],
    };
  }

  function pad(n, w) { return String(n).padStart(w, "0"); }

  // Python: datetime.fromtimestamp(t, tz=utc).isoformat(timespec="milliseconds")
  function iso(t) {
    if (t === null || t === undefined) return null;
    const micros = Math.round(t * 1e6);
    const ms = Math.floor(micros / 1000);
    const d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" + pad(d.getUTCDate(), 2) + "T" +
      pad(d.getUTCHours(), 2) + ":" + pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2) + "." +
      pad(d.getUTCMilliseconds(), 3) + "+00:00";
  }

  function round(x, digits) {
    const f = Math.pow(10, digits);
    return Math.round(x * f) / f;
  }

  function since(t0, t) {
    if (t0 === null || t0 === undefined || t === null || t === undefined) return null;
    return round(t - t0, 3);
  }

  function parseIso(s) { return s ? Date.parse(s) / 1000 : null; }

  /* A results file (finished) has no private keys: rebuild them so folding can go on. */
  function ensureState(results) {
    if (!results._index) {
      results._index = {};
      results.agents.forEach(function (a, i) { results._index[a.id] = i; });
    }
    if (results._t0 === undefined) results._t0 = parseIso(results.started_at);
    results.agents.forEach(function (a) { if (a._t0 === undefined) a._t0 = parseIso(a.started_at); });
    if (results._seq === undefined) results._seq = 0;
    return results;
  }

  function agentOf(results, id) {
    if (!results._index) results._index = {};
    const pos = results._index[id];
    return pos === undefined ? null : results.agents[pos];
  }

  function iteration(agent, n) {
    while (agent.iterations.length < n) {
      agent.iterations.push({
        n: agent.iterations.length + 1, prompt: "", response: "", started_at: null,
        duration: null, usage: null, blocks: [], children: [],
      });
    }
    return agent.iterations[n - 1];
  }

  function get(obj, key, dflt) {
    return obj[key] === undefined ? dflt : obj[key];
  }

  const USAGE_KEYS = ["prompt_tokens", "completion_tokens", "cost_usd"];

  function fold(results, event) {
    const kind = event.type, t = event.t;
    const totals = results.totals;
    if (kind === "rollout_started") {
      ["repo", "commit", "branch", "prompt", "model", "sandbox", "config"].forEach(function (k) {
        results[k] = get(event, k, null);
      });
      results.started_at = iso(t);
      results._t0 = t;
    } else if (kind === "agent_started") {
      const agent = {
        id: event.agent, parent: get(event, "parent", null), depth: get(event, "depth", 0),
        parent_iteration: get(event, "parent_iteration", null), index: get(event, "index", null),
        task: get(event, "task", ""), sandbox: null, sandbox_seconds: null, status: "running",
        result: null, error: null, patch: null, patch_stats: null, iterations: [],
        usage: { prompt_tokens: 0, completion_tokens: 0, cost_usd: 0.0 },
        started_at: iso(t), finished_at: null, duration: null, _t0: t,
      };
      if (!results._index) results._index = {};
      results._index[agent.id] = results.agents.length;
      results.agents.push(agent);
      totals.agents += 1;
      totals.max_depth = Math.max(totals.max_depth, agent.depth);
    } else if (kind === "sandbox_created") {
      const agent = agentOf(results, event.agent);
      if (agent !== null) {
        agent.sandbox = get(event, "sandbox", null);
        agent.sandbox_seconds = get(event, "duration", null);
        totals.sandboxes += 1;
      }
    } else if (kind === "llm_call") {
      const agent = agentOf(results, event.agent);
      if (agent === null) return results;
      const it = iteration(agent, event.iteration);
      it.prompt = get(event, "prompt", "");
      it.response = get(event, "response", "");
      it.started_at = iso((t || 0) - (event.duration || 0));
      it.duration = get(event, "duration", null);
      it.usage = get(event, "usage", null);
      const usage = event.usage || {};
      USAGE_KEYS.forEach(function (k) {
        agent.usage[k] += usage[k] || 0;
        totals[k] += usage[k] || 0;
      });
      totals.llm_calls += 1;
      totals.iterations += 1;
    } else if (kind === "code_executed") {
      const agent = agentOf(results, event.agent);
      if (agent === null) return results;
      const block = {};
      ["code", "stdout", "stderr", "error", "duration", "final"].forEach(function (k) {
        block[k] = get(event, k, null);
      });
      iteration(agent, event.iteration).blocks.push(block);
      totals.code_blocks += 1;
    } else if (kind === "child_spawned") {
      const agent = agentOf(results, event.agent);
      if (agent !== null) iteration(agent, event.iteration).children.push(event.child);
    } else if (kind === "agent_finished") {
      const agent = agentOf(results, event.agent);
      if (agent === null) return results;
      agent.status = get(event, "status", null);
      agent.result = get(event, "result", null);
      agent.error = get(event, "error", null);
      agent.finished_at = iso(t);
      agent.duration = since(agent._t0, t);
      if ("patch" in event) { // a sub-agent's changes, as handed to its parent
        agent.patch = get(event, "patch", null);
        agent.patch_stats = get(event, "patch_stats", null);
      }
    } else if (kind === "rollout_finished") {
      ["status", "error", "answer", "patch", "report"].forEach(function (k) { results[k] = get(event, k, null); });
      results.finished_at = iso(t);
      results.duration = since(results._t0, t);
    } else if (kind === "llm_query") {
      const usage = event.usage || {};
      USAGE_KEYS.forEach(function (k) { totals[k] += usage[k] || 0; });
      totals.llm_calls += 1;
    }
    totals.cost_usd = round(totals.cost_usd, 8);
    return results;
  }

  /* Python: trace.fold_events */
  function foldEvents(events, runId) {
    const results = newResults(runId);
    results._seq = 0;
    events.forEach(function (e) {
      if (e.type === "rollout_started" && !runId) results.run_id = get(e, "run_id", "");
      fold(results, e);
      if (typeof e.seq === "number") results._seq = e.seq;
    });
    return results;
  }

  /* Python: trace.public */
  function publicResults(results) {
    const strip = function (obj) {
      const out = {};
      Object.keys(obj).forEach(function (k) { if (k.charAt(0) !== "_") out[k] = obj[k]; });
      return out;
    };
    const out = strip(results);
    out.agents = results.agents.map(strip);
    return out;
  }

  /* Events from JSONL text; a torn last line is skipped (Python: trace.read_events). */
  function parseJsonl(text) {
    const events = [];
    text.split("\n").forEach(function (line) {
      if (!line.trim()) return;
      try { events.push(JSON.parse(line)); } catch (e) { /* torn line */ }
    });
    return events;
  }

  const api = { newResults, fold, foldEvents, ensureState, publicResults, parseJsonl, iso };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.RlmFold = api;
})(typeof window !== "undefined" ? window : this);
