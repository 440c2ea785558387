// margin-design explorer: wires the page's controls to the server's /api (which validates with the config loader and
// solves with the exact solver). No computation of the design happens here: this file only shows what the server sends.
"use strict";

// [fieldset, key (section.key of the TOML config), label, unit, options]; options: slider {min,max,step}, select,
// int, show: [key, values] (the key applies only with those values, as the config loader requires), suggest: the
// value filled in when the field appears empty.
const SPEC = [
  ["fs-market", "market.alpha", "α: price impact", "price change (decimal) per unit of ADV traded; benchmark 0.2", {slider: [0.02, 1, 0.005]}],
  ["fs-market", "market.c_eff", "c_eff: forced liquidation", "ADV liquidated per unit of margin ratio; benchmark 4.5", {slider: [0.5, 20, 0.1]}],
  ["fs-market", "market.inventory_penalty", "κ: inventory penalty", "price per unit of ADV squared; 0 = none (11)", {}],
  ["fs-market", "cap.kind", "slope cap", "manipulation_proof: the cap (16)-(18); none: monotone only", {select: true}],
  ["fs-market", "cap.input", "risk input of the rule", "variance: r = the squared return (4); realized_variance: mean of the last window; ewma; hs_var / hs_es: historical-simulation VaR / ES of the window", {select: true}],
  ["fs-market", "cap.window", "window", "returns (days) in the window; realised variance: cap = √window × (17)", {int: true, show: ["cap.input", ["realized_variance", "hs_var", "hs_es"]], suggest: "5"}],
  ["fs-market", "cap.level", "p: VaR / ES level", "confidence level, a probability in (0.5, 1); 0.99 = 99%", {show: ["cap.input", ["hs_var", "hs_es"]], suggest: "0.99"}],
  ["fs-market", "cap.lambda", "λ: EWMA decay", "in (0, 1); weight of the last squared return is 1 − λ", {show: ["cap.input", ["ewma"]], suggest: "0.94"}],
  ["fs-costs", "objective.loss", "coverage loss", "shortfall: E[(loss − M)+]; squared_shortfall: E[(loss − M)+²]/2 (31)", {select: true}],
  ["fs-costs", "objective.carry", "κ_M: carrying cost", "cost per unit of margin ratio posted (decimal); 0.01 ⇒ 99% coverage first-best", {slider: [0, 0.1, 0.001]}],
  ["fs-costs", "objective.prev_margin", "M₋: margin before the reset", "margin ratio (decimal); 0.05 = 5% of notional", {slider: [0, 0.2, 0.0025]}],
  ["fs-costs", "objective.liquidation_weight", "λ_L: liquidation weight", "weight of C(c_eff (M − M₋)+), forced sales when margin rises (32)", {}],
  ["fs-costs", "objective.liquidation_cost", "liquidation cost form C", "quadratic: x²/2; linear: x", {select: true}],
  ["fs-costs", "objective.participation_weight", "λ_P: participation weight", "weight of the participation loss (32)", {}],
  ["fs-costs", "objective.participation_beta", "β: participation sensitivity", "share of participants lost per unit of margin ratio above M₋", {}],
  ["fs-costs", "objective.participation_cost", "participation cost form H", "linear: x; quadratic: x²/2", {select: true}],
  ["fs-shock", "shock.model", "close-out shock", "normal or Student-t, scaled to unit variance", {select: true}],
  ["fs-shock", "shock.df", "degrees of freedom", "Student-t, > 2", {show: ["shock.model", ["student_t"]], suggest: "5"}],
  ["fs-shock", "shock.horizon_days", "margin period of risk", "days (the loss scales with √days)", {}],
  ["fs-states", "grid.vol_min", "lowest state", "daily vol, decimal", {vol: true}],
  ["fs-states", "grid.vol_max", "highest state", "daily vol, decimal", {vol: true}],
  ["fs-states", "grid.points", "number of states", "grid points (integer ≥ 3; the page draws up to 20,000)", {int: true}],
  ["fs-states", "grid.spacing", "grid spacing", "equal steps in vol or in variance", {select: true}],
  ["fs-states", "states.density", "probability of the states", "uniform, or lognormal in daily vol", {select: true}],
  ["fs-states", "states.median_vol", "median state", "daily vol, decimal", {vol: true, show: ["states.density", ["lognormal"]], suggest: "0.01"}],
  ["fs-states", "states.dispersion", "dispersion", "log-sd of daily vol", {show: ["states.density", ["lognormal"]], suggest: "0.5"}],
];
const CAL = [
  ["elasticity", "ε_XM: position-margin elasticity", "−dlog X / dlog M"],
  ["turnover", "τ: turnover", "position XP / ADV (days of ADV)"],
  ["participation", "f: trigger size", "fraction of ADV (decimal); 0.01 = 1%"],
  ["margin", "m: margin level", "margin ratio (decimal) for c_eff = ε τ / m (76)"],
  ["distortion_bps", "δ: sampled-price distortion of the trigger", "bp; empty: 200 √f (65)"],
];
const REGIME_TEXT = {tracking: "tracking: follows the first-best", saturated: "saturated: rises at the cap",
                     pooling: "pooling: held flat", floor: "floor: M = 0"};
const TARGET_REGIME_TEXT = Object.assign({}, REGIME_TEXT, {tracking: "tracking: follows your rule"});
const SQRT252 = Math.sqrt(252);
const DEBOUNCE_MS = 40;

const S = {start: null, fields: {}, extra: {}, rule: null, inflight: false, pending: false, lastInput: 0, good: null,
           colors: {}, lines: {}};
window.__timings = [];     // input-to-redraw times (ms) of the page updates, read by benchmarks/bench_app.py
window.__updates = 0;      // completed page updates (tests wait on it)
window.__idle = () => !S.inflight && !S.pending && !S.waiting;   // nothing in flight, queued or debouncing

const $ = (id) => document.getElementById(id);
const fmt = (x, d) => (x === null || x === undefined || !isFinite(x)) ? "n/a" : Number(x).toFixed(d);
const sig = (x, d) => (x === null || x === undefined || !isFinite(x)) ? "n/a" : x === 0 ? "0" : Number(x).toPrecision(d);

function text(value) { return (value === undefined || value === null) ? "" : String(value); }

function buildField(fs, key, label, unit, opt) {
  const [section, name] = key.split(".");
  const wrap = document.createElement("label");
  wrap.className = "row";
  wrap.id = "row-" + key.replace(".", "-");
  wrap.innerHTML = `<span class="lab"></span> <span class="unit"></span>`;
  wrap.querySelector(".lab").textContent = label;
  wrap.querySelector(".unit").textContent = unit;
  let input;
  if (opt.select) {
    input = document.createElement("select");
    let choices = S.start.choices[key] || [];
    const current = text((S.start.config[section] || {})[name]);
    // choices that need a data file are offered only when the start config has that file
    choices = choices.filter((c) => !((c === "empirical" || c === "table") && c !== current));
    for (const c of choices) { const o = document.createElement("option"); o.value = c; o.textContent = c; input.appendChild(o); }
    wrap.appendChild(input);
  } else {
    input = document.createElement("input");
    input.type = "text";
    input.inputMode = "decimal";
    input.spellcheck = false;
    if (opt.slider) {
      const pair = document.createElement("div");
      pair.className = "pair";
      const range = document.createElement("input");
      range.type = "range";
      [range.min, range.max, range.step] = opt.slider.map(String);
      range.id = "slider-" + key.replace(".", "-");
      range.setAttribute("aria-label", label + " slider");
      range.addEventListener("input", () => { input.value = range.value; changed(); });
      input.addEventListener("input", () => { if (isFinite(parseFloat(input.value))) range.value = input.value; });
      pair.appendChild(range);
      pair.appendChild(input);
      wrap.appendChild(pair);
      S.fields[key + "#range"] = range;
    } else {
      wrap.appendChild(input);
    }
    if (opt.vol) {
      const hint = document.createElement("span");
      hint.className = "hint";
      wrap.appendChild(hint);
      const show = () => { const v = parseFloat(input.value); hint.textContent = isFinite(v) ? ` = ${(100 * v).toFixed(2)}% a day, ${(100 * v * SQRT252).toFixed(1)}% annualised` : ""; };
      input.addEventListener("input", show);
      S.fields[key + "#hint"] = show;
    }
  }
  input.id = "ctl-" + key.replace(".", "-");
  input.name = key;
  input.addEventListener(opt.select ? "change" : "input", () => { applyVisibility(); changed(); });
  $(fs).appendChild(wrap);
  S.fields[key] = {input, wrap, opt};
}

function setField(key, value) {
  const f = S.fields[key];
  if (!f) return;
  f.input.value = text(value);
  if (S.fields[key + "#range"]) S.fields[key + "#range"].value = text(value);
  if (S.fields[key + "#hint"]) S.fields[key + "#hint"]();
}

function applyVisibility() {
  for (const [, key, , , opt] of SPEC) {
    if (!opt.show) continue;
    const f = S.fields[key];
    const on = opt.show[1].includes(S.fields[opt.show[0]].input.value);
    if (on && f.wrap.hidden && !f.input.value && opt.suggest) setField(key, opt.suggest);
    f.wrap.hidden = !on;
  }
}

// The config the controls describe: sections and keys as in the TOML file, values as typed (the server reads numbers
// with int/float and validates with the config loader). Keys of the start config the page has no control for (data
// files) are passed through unchanged.
function controls() {
  const cfg = JSON.parse(JSON.stringify(S.extra));
  for (const [, key, , , opt] of SPEC) {
    const f = S.fields[key];
    if (f.wrap.hidden) continue;
    const [section, name] = key.split(".");
    cfg[section] = cfg[section] || {};
    cfg[section][name] = f.input.value;
  }
  for (const [key, values] of Object.entries({"shock.file": ["empirical"], "shock.bandwidth": ["empirical"], "states.file": ["table"]})) {
    const [section, name] = key.split(".");
    const opt = key.startsWith("shock") ? "shock.model" : "states.density";
    if (cfg[section] && name in cfg[section] && !values.includes(S.fields[opt].input.value)) delete cfg[section][name];
  }
  return cfg;
}

function changed() {
  S.waiting = true;           // a change is waiting for its debounce
  S.lastInput = performance.now();
  clearTimeout(S.timer);
  S.timer = setTimeout(update, DEBOUNCE_MS);
}

async function post(path, body) {
  let res;
  try {
    res = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  } catch (e) {
    return {error: "the explorer's server does not answer; is margin-design app still running?"};
  }
  if (res.headers.get("Content-Disposition")) return {response: res};     // an exported file (schedule.json is JSON too)
  return await res.json();
}

function showError(sentence) {
  const box = $("error");
  for (const el of document.querySelectorAll(".invalid")) el.classList.remove("invalid");
  if (sentence) {
    // the loader's sentence names the key first ("objective.carry = 1.5 must be ..."): outline that control
    const m = sentence.match(/^(?:missing required key )?([a-z_]+\.[a-z_]+)/);
    if (m && S.fields[m[1]]) S.fields[m[1]].input.classList.add("invalid");
    box.textContent = sentence + (S.good ? " The page still shows the last valid design." : "");
    box.hidden = false;
    document.body.classList.add("stale");
  } else {
    box.hidden = true;
    box.textContent = "";
    document.body.classList.remove("stale");
  }
}

// One solve at a time: while a request is in flight, further changes only mark the page dirty, and the latest
// controls are sent when the answer arrives (never two solves at once, never a stale answer drawn over a newer one).
async function update() {
  S.waiting = false;
  if (S.inflight) { S.pending = true; return; }
  S.inflight = true;
  const t0 = S.lastInput;
  $("status").textContent = "solving…";
  const out = await post("/api/solve", {config: controls(), rule: S.rule ? S.rule.id : null});
  if (out.error) {
    showError(out.error);
    $("status").textContent = "not updated: see the message below";
  } else {
    showError(null);
    await render(out);
    S.good = out;
    const ms = performance.now() - t0;
    window.__timings.push(ms);
    $("status").textContent = `updated: ${out.states} states solved in ${out.solve_ms.toFixed(0)} ms on the server, page redrawn ${ms.toFixed(0)} ms after the last change`;
  }
  window.__updates += 1;
  S.inflight = false;
  if (S.pending) { S.pending = false; update(); }
}

function regimeShapes(out, withText) {
  const shapes = [], annotations = [];
  const span = out.vol_annual_pct[out.vol_annual_pct.length - 1] - out.vol_annual_pct[0];
  for (const s of out.segments) {
    shapes.push({type: "rect", xref: "x", yref: "paper", x0: s.from_pct, x1: s.to_pct, y0: 0, y1: 1, fillcolor: S.colors[s.kind],
                 line: {width: 0}, layer: "below"});
    if (withText && s.to_pct - s.from_pct > 0.07 * span)
      annotations.push({x: (s.from_pct + s.to_pct) / 2, y: 1, xref: "x", yref: "paper", yanchor: "top", text: s.kind, showarrow: false,
                        font: {size: 12, color: "#333"}});
  }
  return {shapes, annotations};
}

function regimeLegend(out) {
  const kinds = [...new Set(out.segments.map((s) => s.kind))];
  return ["tracking", "saturated", "pooling", "floor"].filter((k) => kinds.includes(k)).map((k) => ({
    x: [null], y: [null], type: "scatter", mode: "markers", name: (out.target ? TARGET_REGIME_TEXT : REGIME_TEXT)[k], hoverinfo: "skip",
    marker: {symbol: "square", size: 14, color: S.colors[k], line: {width: 1, color: "#999"}}}));
}

function stairs(x, y) {   // a step line: value y[i] on [x[i], x[i+1])
  return {x: x.slice(0, y.length).concat([x[x.length - 1]]), y: y.concat([y[y.length - 1]]), line: {shape: "hv"}};
}

const CONFIG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"]};
const AXIS_X = {title: {text: "annualised volatility √252 σ (%)"}, ticksuffix: "%", zeroline: false};
const LAYOUT = {margin: {l: 70, r: 20, t: 40, b: 60}, legend: {orientation: "h", y: -0.2, yanchor: "top"}, font: {family: "DejaVu Sans, sans-serif", size: 12},
                paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "x unified"};

async function render(out) {
  const va = out.vol_annual_pct;
  const target = out.target;
  const rule = out.rule;
  const fbName = target ? `your rule "${rule.label.replace(/[<>&]/g, "")}"` : "first-best M_fb (34): ignores the cap";
  const gName = target ? "capped version of your rule (manipulation-proof)" : "optimal manipulation-proof rule g*";
  const reg = regimeShapes(out, true);
  const p1 = [
    {x: va, y: out.first_best_pct, name: fbName + out.first_best_note, line: {color: target ? S.lines.published : S.lines.first_best, dash: "dash", width: 1.6}},
    {x: va, y: out.margin_pct, name: gName, line: {color: S.lines.rule, width: 3}},
    ...regimeLegend(out)];
  const l1 = Object.assign({}, LAYOUT, {title: {text: target ? "Your rule and its capped version" : "Margin rule against the first-best", font: {size: 15}},
    xaxis: AXIS_X, yaxis: {title: {text: "margin (% of notional)"}, ticksuffix: "%", rangemode: "tozero"}, shapes: reg.shapes, annotations: reg.annotations});
  const slope = stairs(va, out.slope_pp_per_point);
  const fbs = stairs(va, out.first_best_slope_pp_per_point);
  const cap = out.cap.slope_vol_annual;
  const p2 = [
    Object.assign(fbs, {name: (target ? "your rule" : "first-best") + " slope", line: Object.assign(fbs.line, {color: target ? S.lines.published : S.lines.first_best, dash: "dash", width: 1.4})}),
    Object.assign(slope, {name: "slope of " + (target ? "the capped version" : "g*"), line: Object.assign(slope.line, {color: S.lines.rule, width: 3})}),
  ];
  const shapes2 = regimeShapes(out, false).shapes;
  if (cap !== null) p2.push({x: [va[0], va[va.length - 1]], y: [cap, cap], name: `cap K/√252 = ${cap.toFixed(3)} pp of margin per vol point (74)`,
                             line: {color: S.lines.cap, width: 6}, opacity: 0.45, mode: "lines"});
  if (rule) for (const [a, b] of rule.over_cap_pct)
    shapes2.push({type: "rect", xref: "x", yref: "paper", x0: a, x1: b, y0: 0, y1: 0.06, fillcolor: "#d73027", opacity: 0.7, line: {width: 0}});
  // the axis range of the report's slope figure: the rule and the cap, and the first-best up to 3 times that
  const top = Math.max(cap === null ? 0 : cap, ...out.slope_pp_per_point.filter(isFinite)) || 1;
  const fbTop = Math.max(...out.first_best_slope_pp_per_point.filter(isFinite));
  const fbLow = Math.min(...out.first_best_slope_pp_per_point.filter(isFinite));
  const l2 = Object.assign({}, LAYOUT, {title: {text: "Slope of the rule against the manipulation-proof cap", font: {size: 15}}, xaxis: AXIS_X,
    yaxis: {title: {text: "dm/dσ_ann (pp of margin per vol point)"}, range: [fbLow < 0 ? -0.15 * top : -0.05 * top,
            Math.max(1.35 * top, Math.min(fbTop, 3 * top) * 1.05)]}, shapes: shapes2,
    annotations: rule && rule.over_cap_pct.length ? [{x: rule.over_cap_pct[0][0], y: 0.07, xref: "x", yref: "paper", xanchor: "left", showarrow: false,
      text: "red band: your rule is steeper than the cap (manipulable)", font: {size: 11, color: "#b2182b"}}] : []});
  let p3, l3;
  if (target) {   // a distance, not a cost in bp: show how far the capped version moves from the rule, state by state
    p3 = [{x: va, y: out.gap_pp, name: "capped version − your rule", line: {color: S.lines.rule, width: 2.5}, fill: "tozeroy",
           fillcolor: "rgba(27,79,156,0.15)"}, ...regimeLegend(out)];
    l3 = Object.assign({}, LAYOUT, {title: {text: "How far the capped version moves from your rule", font: {size: 15}}, xaxis: AXIS_X,
      yaxis: {title: {text: "change (pp of margin)"}, ticksuffix: " pp", zeroline: true}, shapes: regimeShapes(out, false).shapes});
  } else {
    const terms = Object.keys(out.objective.terms);
    const fbv = terms.map((t) => 1e4 * out.objective.first_best_terms[t]).concat([1e4 * out.objective.first_best_value]);
    const gv = terms.map((t) => 1e4 * out.objective.terms[t]).concat([1e4 * out.objective.value]);
    const labels = terms.concat(["total"]);
    p3 = [
      {x: labels, y: fbv, type: "bar", name: "first-best (ignores the cap)", marker: {color: "#bababa"},
       text: fbv.map((v) => sig(v, 3)), textposition: "outside"},
      {x: labels, y: gv, type: "bar", name: "manipulation-proof rule g*", marker: {color: S.lines.rule},
       text: gv.map((v) => sig(v, 3)), textposition: "outside"}];
    l3 = Object.assign({}, LAYOUT, {title: {text: "Expected cost by term (bp of notional per margin period)", font: {size: 15}}, barmode: "group",
      yaxis: {title: {text: "bp of notional"}, rangemode: "tozero"}, hovermode: "closest"});
  }
  await Promise.all([Plotly.react("plot-schedule", p1, l1, CONFIG), Plotly.react("plot-slope", p2, l2, CONFIG), Plotly.react("plot-cost", p3, l3, CONFIG)]);
  headline(out);
}

function ranges(out, kind) {
  return out.segments.filter((s) => s.kind === kind).map((s) => `${s.from_pct.toFixed(1)}%–${s.to_pct.toFixed(1)}%`);
}

function headline(out) {
  const cap = out.cap.slope_vol_annual;
  const capEl = $("cap-value");
  capEl.dataset.value = cap === null ? "" : String(out.cap.slope_vol);
  capEl.textContent = cap === null ? "no cap" : `${cap.toFixed(4)} pp per vol point`;
  $("cap-detail").textContent = cap === null ? "cap.kind = none: the rule need only be monotone." :
    `The margin may rise by at most ${cap.toFixed(4)} percentage points of notional for each point of annualised volatility ` +
    `(K = ${sig(out.cap.slope_vol, 6)} per unit of daily vol). ${out.cap.formula}`;
  const price = $("price-value");
  price.dataset.value = String(out.price);
  const c = out.certificate;
  if (out.target) {
    $("price-title").textContent = "Change needed to cap your rule";
    price.textContent = `${out.rms_distance_pp.toFixed(3)} pp (rms)`;
    $("price-detail").textContent = `Root-mean-square distance of the capped version from your rule, weighted by the states' probabilities; ` +
      `largest change ${out.rule.max_change_pp.toFixed(3)} pp. Objective J = ${sig(out.objective.value, 6)} (½ (M − t)², margin ratio², Appendix D.2).`;
  } else {
    $("price-title").textContent = "Price of manipulation-proofness";
    price.textContent = `${out.price_bp.toPrecision(4)} bp of notional`;
    $("price-detail").textContent = `J(g*) − J(M_fb) = ${sig(out.price, 6)} per unit notional: ` +
      (out.price_relative === null ? "" : `${(100 * out.price_relative).toFixed(2)}% above the first-best's expected cost of ${sig(1e4 * out.objective.first_best_value, 4)} bp.`);
  }
  const cert = $("cert-value");
  cert.dataset.ok = String(c.ok);
  cert.textContent = c.ok ? "✔ certified optimal" : "✘ NOT certified";
  cert.className = "big " + (c.ok ? "ok" : "bad");
  $("cert-detail").textContent = `KKT certificate: relative duality gap ${sig(c.relative_gap, 2)} (target ≤ ${c.relative_gap_target}), ` +
    `feasibility ${sig(c.feasibility, 2)}, complementarity ${sig(c.complementarity, 2)}.` + (c.ok ? "" : " Do not publish this rule.");
  const kinds = out.segments.map((s) => s.kind);
  $("regimes").dataset.kinds = kinds.join(" ");
  const parts = [];
  for (const k of ["tracking", "saturated", "pooling", "floor"]) {
    const r = ranges(out, k);
    if (r.length) parts.push(`<b>${k}</b> (${{tracking: "follows the " + (out.target ? "existing rule" : "first-best"), saturated: "rises exactly at the cap",
      pooling: "held flat because the target falls or rises too fast", floor: "zero margin"}[k]}) at ${r.join(", ")} annualised vol`);
  }
  $("regimes").innerHTML = "Regimes of the " + (out.target ? "capped version: " : "optimal rule: ") + parts.join("; ") + ".";
  const lo = out.margin_pct[0], hi = out.margin_pct[out.margin_pct.length - 1];
  if (out.target) {
    $("words").textContent = `The capped version of your rule charges ${lo.toFixed(2)}% of notional in the calmest state and ` +
      `${hi.toFixed(2)}% in the most volatile one, never rising faster than the cap, so no trader can profit from pushing the sampled price to raise margins.`;
  } else {
    const sat = ranges(out, "saturated");
    $("words").textContent = `The optimal manipulation-proof rule charges ${lo.toFixed(2)}% of notional at ${out.vol_annual_pct[0].toFixed(1)}% ` +
      `annualised vol and ${hi.toFixed(2)}% at ${out.vol_annual_pct[out.vol_annual_pct.length - 1].toFixed(1)}%. ` +
      (sat.length ? `It rises exactly at the cap across ${sat.join(", ")} annualised vol (saturated), where following the first-best would let a trader profit from moving the price; ` : "The cap does not bind anywhere; ") +
      `making the rule manipulation-proof costs ${out.price_bp.toPrecision(3)} bp of notional in expected cost per margin period` +
      (out.price_relative === null ? "." : ` (${(100 * out.price_relative).toFixed(1)}% more than the first-best, which a CCP cannot publish because it can be manipulated).`);
  }
  const panel = $("rule-panel");
  panel.hidden = !out.rule;
  if (out.rule) {
    const r = out.rule;
    let w = `Your rule "${r.label}" `;
    if (r.states_over_cap) {
      w += `rises faster than the cap in ${r.states_over_cap} of ${out.states} states (${r.over_cap_pct.map(([a, b]) => `${a.toFixed(1)}%–${b.toFixed(1)}%`).join(", ")} ` +
        `annualised vol; up to ${r.max_slope_over_cap.toFixed(2)} times the cap). There a trader who sells ${(100 * r.trigger_adv).toFixed(0)}% of ADV ` +
        `to push the sampled price, forcing liquidations at the higher margin, and buys back earns at least ` +
        `${r.max_gain_bps === null ? "n/a" : r.max_gain_bps.toFixed(1)} bp of the trigger notional (return ${r.max_gain_roi_pct === null ? "n/a" : r.max_gain_roi_pct.toFixed(2)}% on margin; ` +
        `largest at ${r.vol_at_max_gain_pct.toFixed(1)}% vol; (58)). `;
    } else {
      w += "never rises faster than the cap: no trigger-and-reverse trade is profitable. ";
    }
    if (r.falls) w += `It falls between ${r.falls_from_pct.toFixed(1)}% and ${r.falls_to_pct.toFixed(1)}% vol, which a margin rule must not do; the capped version pools (is held flat) there. `;
    w += `The capped version departs from your rule by at most ${r.max_change_pp.toFixed(3)} percentage points of margin.`;
    $("rule-words").textContent = w;
  }
}

// ------------------------------------------------------------------ calibration panel
function buildCalibration() {
  const sel = $("cal-preset");
  const blank = document.createElement("option");
  blank.value = ""; blank.textContent = "choose a preset (paper's Table 2 grid)…";
  sel.appendChild(blank);
  S.start.presets.forEach((p, i) => { const o = document.createElement("option"); o.value = String(i); o.textContent = p.label; sel.appendChild(o); });
  for (const [name, label, unit] of CAL) {
    const wrap = document.createElement("label");
    wrap.className = "row";
    wrap.innerHTML = `<span class="lab"></span> <span class="unit"></span><input type="text" inputmode="decimal">`;
    wrap.querySelector(".lab").textContent = label;
    wrap.querySelector(".unit").textContent = unit;
    wrap.querySelector("input").id = "cal-" + name;
    $("cal-fields").appendChild(wrap);
  }
  const fill = () => {
    if (sel.value === "") return;
    const p = S.start.presets[Number(sel.value)];
    for (const [name] of CAL) $("cal-" + name).value = text(p[name]);
  };
  sel.addEventListener("change", fill);
  sel.value = "0";     // the paper's benchmark, as a starting point (nothing is applied until the button is pressed)
  fill();
  $("cal-apply").addEventListener("click", async () => {
    const body = {};
    for (const [name] of CAL) body[name] = $("cal-" + name).value;
    body.inventory_penalty = S.fields["market.inventory_penalty"].input.value;
    const out = await post("/api/calibrate", body);
    if (out.error) { $("cal-result").textContent = out.error; $("cal-result").className = "note bad"; return; }
    $("cal-result").className = "note";
    $("cal-result").textContent = `α = ${sig(out.alpha, 6)} (75), c_eff = ${sig(out.c_eff, 6)} (76), α c_eff = ${sig(out.alpha_c_eff, 4)}; ` +
      `relative cap (1/m) dm/dσ_ann ≤ ${sig(out.cap.relative_dvol_annual, 4)} (80).`;
    setField("market.alpha", out.alpha);
    setField("market.c_eff", out.c_eff);
    changed();
  });
}

// ------------------------------------------------------------------ existing rule
async function useRule(body) {
  $("rule-status").textContent = "reading…";
  const out = await post("/api/rule", body);
  if (out.error) { $("rule-status").textContent = out.error; $("rule-status").className = "note bad"; return; }
  S.rule = out;
  $("rule-status").className = "note";
  $("rule-status").textContent = `Showing "${out.label}" capped: the plots now compare your rule with its manipulation-proof version.`;
  $("rule-clear").disabled = false;
  $("export-target").hidden = false;
  S.lastInput = performance.now();
  update();
}

function buildRule() {
  $("max-upload").textContent = `${Math.round(S.start.max_upload_bytes / 1024)} KB`;
  $("rule-file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    if (file.size > S.start.max_upload_bytes) {
      $("rule-status").textContent = `the file has ${file.size.toLocaleString()} bytes; at most ${S.start.max_upload_bytes.toLocaleString()} are accepted.`;
      $("rule-status").className = "note bad";
      return;
    }
    await useRule({kind: "csv", name: file.name, text: await file.text()});
    ev.target.value = "";
  });
  $("rule-use").addEventListener("click", () => useRule({kind: "formula", text: $("rule-formula").value}));
  $("rule-formula").addEventListener("keydown", (ev) => { if (ev.key === "Enter") useRule({kind: "formula", text: $("rule-formula").value}); });
  $("rule-clear").addEventListener("click", () => {
    S.rule = null;
    $("rule-clear").disabled = true;
    $("export-target").hidden = true;
    $("rule-status").textContent = "";
    S.lastInput = performance.now();
    update();
  });
}

// ------------------------------------------------------------------ export
function buildExport() {
  for (const b of document.querySelectorAll("[data-export]")) {
    b.addEventListener("click", async () => {
      const out = await post("/api/export", {what: b.dataset.export, config: controls(), rule: S.rule ? S.rule.id : null,
                                             tick: $("export-tick").value, published_vols: $("export-vols").value.trim()});
      if (out.error) { showError(out.error); return; }
      const res = out.response;
      const name = (res.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/)[1];
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url; a.download = name;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 5000);
    });
  }
}

async function main() {
  const res = await fetch("/api/start");
  const start = await res.json();
  if (start.error) { showError(start.error); return; }
  S.start = start;
  $("form").addEventListener("submit", (ev) => ev.preventDefault());
  S.colors = start.regime_colors;
  S.lines = start.line_colors;
  $("config-name").textContent = start.config_name;
  for (const [fs, key, label, unit, opt] of SPEC) buildField(fs, key, label, unit, opt);
  S.extra = {};
  const keys = new Set(SPEC.map((s) => s[1]));
  for (const [section, values] of Object.entries(start.config)) {
    for (const [name, value] of Object.entries(values)) {
      const key = section + "." + name;
      if (keys.has(key)) setField(key, value);
      else { S.extra[section] = S.extra[section] || {}; S.extra[section][name] = value; }
    }
  }
  applyVisibility();
  buildCalibration();
  buildRule();
  buildExport();
  S.lastInput = performance.now();
  await update();
}

window.addEventListener("DOMContentLoaded", main);
