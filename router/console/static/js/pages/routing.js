// Routing: the running policy (rules in order, experiments, budgets, breakers with live state, reload status) and
// what-if: replay the recorded features of past edits through a candidate policy (POST /v1/route/what-if).

import { api, ApiError } from '../api.js';
import { clear, field, h, pct, section, select, table, usd, when } from '../dom.js';
import { errorBars } from '../charts.js';
import { errorBox, errorText } from '../views.js';

const BREAKER_REFRESH_MS = 5000;

function cond(whenClause) {
  const parts = Object.entries(whenClause || {}).map(([k, v]) => `${k} ${typeof v === 'object' && v !== null
    ? Object.entries(v).map(([op, x]) => `${op} ${JSON.stringify(x)}`).join(' & ') : `= ${JSON.stringify(v)}`}`);
  return parts.join(', ') || 'always';
}

export async function render(main) {
  const policyBox = h('div', { 'data-testid': 'policy' });
  const breakerBox = h('div', { 'data-testid': 'breakers', 'aria-live': 'polite' });
  const whatIfBox = h('div', { 'data-testid': 'what-if' });
  clear(main, h('h1', {}, 'Routing'), h('div', { class: 'edit-layout' },
    h('div', { class: 'col' }, section('Running policy', policyBox)),
    h('div', { class: 'col' }, section('Breakers', breakerBox), section('What if…', whatIfBox))));

  let policy;
  try {
    policy = await api('/v1/policy');
  } catch (err) {
    clear(policyBox, errorBox(err));
    return null;
  }
  drawPolicy(policyBox, policy);
  drawBreakers(breakerBox, policy.breakers || {}, policy.breaker_details || {});
  const timer = setInterval(async () => {
    try {
      const p = await api('/v1/policy');
      drawBreakers(breakerBox, p.breakers || {}, p.breaker_details || {});
    } catch (err) {
      clear(breakerBox, errorBox(err));
    }
  }, BREAKER_REFRESH_MS);
  whatIf(whatIfBox, policy);
  return () => clearInterval(timer);
}

function drawPolicy(box, p) {
  const [route, ...fallbacks] = p.default_route || [];
  const reload = p.reload;
  clear(box,
    h('dl', { class: 'kv' },
      h('dt', {}, 'Version'), h('dd', {}, `${p.version} (digest ${p.digest})`),
      p.source ? [h('dt', {}, 'Source'), h('dd', {}, p.source)] : null,
      p.loaded_at ? [h('dt', {}, 'Loaded'), h('dd', {}, when(p.loaded_at))] : null,
      reload ? [h('dt', {}, 'Reload'), h('dd', { class: reload.error ? 'err' : '' }, reload.error
        ? `last reload failed ${when(reload.failed_at)}: ${reload.error} (the previous policy keeps running)`
        : `ok, loaded ${when(reload.loaded_at)}`)] : null,
      p.forced_provider && p.forced_provider !== 'auto' ? [h('dt', {}, 'Forced provider'), h('dd', {}, p.forced_provider)] : null,
      p.pricing_version ? [h('dt', {}, 'Prices'), h('dd', {}, p.pricing_version)] : null,
      h('dt', {}, 'Default route'), h('dd', {}, [route, ...fallbacks].join(' → '))),
    h('h3', {}, 'Rules, in order (the first that matches decides)'),
    h('div', { class: 'table-wrap' }, table(['#', 'Rule', 'When', 'Route', 'Description'], (p.rules || []).map((r, i) => [
      String(i + 1), h('strong', {}, r.name), cond(r.when), [r.route, ...(r.fallbacks || [])].join(' → '), r.description || '']),
    { cls: 'grid rules' })),
    h('h3', {}, 'Experiments'),
    (p.experiments || []).length ? h('div', { class: 'table-wrap' }, table(['Experiment', 'Arms', 'Applies to'], p.experiments.map((e) => [
      h('a', { href: `#/experiments/${encodeURIComponent(e.name)}` }, e.name),
      e.arms.map((a) => `${a.name} ${a.weight} → ${a.route}`).join(', '), (e.applies_to_rules || []).join(', ') || 'every rule'])))
      : h('p', { class: 'muted' }, 'None.'),
    h('h3', {}, 'Budgets'),
    p.budgets ? h('p', {}, `default ${p.budgets.default_daily_usd === null ? 'none' : `${usd(p.budgets.default_daily_usd, 2)}/day`}`
      + `${Object.keys(p.budgets.tenants || {}).length ? ` · tenants: ${Object.entries(p.budgets.tenants).map(([t, v]) => `${t} ${usd(v, 2)}`).join(', ')}` : ''}`
      + ` · on exceed: ${p.budgets.on_exceed}`)
      : h('p', {}, p.budget ? `your daily budget: ${p.budget.daily_usd === null ? 'none' : usd(p.budget.daily_usd, 2)} · on exceed: ${p.budget.on_exceed}` : '—'));
}

function drawBreakers(box, breakers, details) {
  const stamp = new Date().toISOString().slice(11, 19);
  const halfOpens = (name) => {
    const s = (details[name] || {}).half_open_in_s;
    return s == null ? '—' : `in ${s < 120 ? `${Math.ceil(s)} s` : `${Math.round(s / 60)} min`}`;
  };
  clear(box, h('div', { class: 'table-wrap' }, table(['Provider', 'State', 'Half-opens'], Object.entries(breakers).map(([name, state]) => [
    name, h('span', { class: `breaker-${state}`, 'data-provider': name }, state),
    h('span', { 'data-half-open': name }, halfOpens(name))]))),
  h('p', { class: 'hint' }, `Live: refreshed every ${BREAKER_REFRESH_MS / 1000} s (last ${stamp} UTC). An open breaker half-opens `
    + 'after its cool-down and lets one trial call through.'));
}

/** The running policy as a file the engine reads: JSON is YAML, so it can be edited and sent as it is. */
function policyText(p) {
  const [route, ...fallbacks] = p.default_route || [];
  const file = { version: `${p.version}-candidate`, default_route: route, default_fallbacks: fallbacks,
    providers: p.providers, rules: p.rules, experiments: p.experiments, budgets: p.budgets };
  return JSON.stringify(file, null, 2);
}

function whatIf(box, policy) {
  const text = h('textarea', { name: 'policy', rows: '16', class: 'code', spellcheck: 'false',
    placeholder: 'A candidate policy file (YAML), e.g. policies/default.yaml with a rule routed elsewhere.' });
  const since = select('since', [['1d', 'last day'], ['7d', 'last 7 days'], ['30d', 'last 30 days']], '7d');
  const tenant = h('input', { type: 'text', name: 'tenant', placeholder: 'all (admin) or one tenant' });
  const fText = field('Candidate policy', text, { name: 'policy',
    hint: 'Past edits’ recorded features are replayed through it with today’s prices; no provider is called.' });
  const fSince = field('Window', since, { name: 'since' });
  const fTenant = field('Tenant', tenant, { name: 'tenant' });
  const fill = h('button', { type: 'button' }, 'Start from the running policy');
  fill.addEventListener('click', () => { text.value = policyText(policy); });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run what-if');
  const out = h('div', { 'data-testid': 'what-if-result', 'aria-live': 'polite' });
  const form = h('form', { 'aria-label': 'What-if' }, fText, h('div', { class: 'row' }, fSince, policy.configured ? fTenant : null),
    h('div', { class: 'buttons' }, fill, run));
  clear(box, form, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const f of [fText, fSince, fTenant]) f.error('');
    const body = { policy: text.value, since: since.value };
    if (tenant.value.trim()) body.tenant = tenant.value.trim();
    run.disabled = true;
    clear(out, h('p', { class: 'hint' }, 'Replaying…'));
    try {
      const answer = await api('/v1/route/what-if', { method: 'POST', json: body });
      drawWhatIf(out, answer);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err instanceof ApiError && err.status === 404 && err.code !== 'not_found_tenant') {
        clear(out, h('p', { class: 'err', 'data-testid': 'what-if-missing' }, `This editgate does not answer POST /v1/route/what-if (${errorText(err)}).`));
      } else {
        const target = { policy: fText, since: fSince, tenant: fTenant }[(err.param || '').split('.')[0]] || fText;
        target.error(errorText(err));
        clear(out);
      }
    } finally {
      run.disabled = false;
    }
  });
}

function drawWhatIf(box, r) {
  const c = r.cost || {};
  const interval = c.after_interval95_usd || [null, null];
  clear(box,
    h('p', {}, `Window ${when(r.window && r.window.since)} → ${when(r.window && r.window.until)} · candidate ${r.policy ? `${r.policy.version} (${r.policy.digest})` : '—'}`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Edits replayed'), h('dd', { 'data-testid': 'wi-edits' }, String(r.edits)),
      h('dt', {}, 'Unchanged'), h('dd', { 'data-testid': 'wi-unchanged' }, String(r.unchanged)),
      h('dt', {}, 'Change route'), h('dd', { 'data-testid': 'wi-changed' }, String(r.changed)),
      h('dt', {}, 'Cost before'), h('dd', { 'data-testid': 'wi-before' }, usd(c.before_usd)),
      h('dt', {}, 'Cost after'), h('dd', { 'data-testid': 'wi-after' }, `${usd(c.after_usd)} (95 % ${usd(interval[0])} – ${usd(interval[1])})`),
      h('dt', {}, 'Difference'), h('dd', { 'data-testid': 'wi-delta' }, `${c.delta_usd < 0 ? '−' : '+'}${usd(Math.abs(c.delta_usd))}`)),
    h('div', { class: 'chart' }, errorBars([
      { label: 'before', value: c.before_usd, lo: null, hi: null },
      { label: 'after', value: c.after_usd, lo: interval[0], hi: interval[1] },
    ], { title: 'Cost before and after, USD', format: (v) => `$${v.toFixed(4)}`, width: 640,
      domain: [0, (Math.max(c.before_usd || 0, c.after_usd || 0, interval[1] || 0) * 1.1) || 1] })),
    h('h3', {}, 'Moves'),
    (r.moves || []).length ? h('div', { class: 'table-wrap' }, table(['From rule', 'From provider', 'To rule', 'To provider', 'Edits'],
      r.moves.map((m) => [m.from.rule, m.from.provider, m.to.rule, m.to.provider || 'refused', String(m.count)]), { cls: 'grid moves' }))
      : h('p', { class: 'muted' }, 'No edit changes route.'),
    (c.per_rule || []).length ? [h('h3', {}, 'Cost per rule'), h('div', { class: 'table-wrap' }, table(['Rule', 'Edits', 'Before', 'After'],
      c.per_rule.map((x) => [x.rule, String(x.edits), usd(x.before_usd), usd(x.after_usd)]), { cls: 'grid per-rule' }))] : null,
    (r.refusals || []).length ? [h('h3', {}, 'Refusals the candidate would cause'),
      table(['Code', 'Edits'], r.refusals.map((x) => [x.code, String(x.count)]))] : null,
    (r.capability_drops || []).length ? [h('h3', {}, 'Capabilities lost'),
      table(['Capability', 'Edits'], r.capability_drops.map((x) => [x.capability, String(x.count)]))] : null,
    (r.providers || []).length ? [h('h3', {}, 'Providers'), h('div', { class: 'table-wrap' }, table(['Provider', 'Edits before', 'Edits after', 'Observed edits', 'p50', 'p95', 'Failure rate'],
      r.providers.map((p) => [p.provider, String(p.edits_before), String(p.edits_after), String(p.observed ? p.observed.edits : 0),
        p.observed && p.observed.p50_ms !== null ? `${Math.round(p.observed.p50_ms)} ms` : '—',
        p.observed && p.observed.p95_ms !== null ? `${Math.round(p.observed.p95_ms)} ms` : '—',
        p.observed ? pct(p.observed.failure_rate) : '—']), { cls: 'grid providers' }))] : null,
    (r.estimates || []).length ? [h('h3', {}, 'Where this is an estimate'), h('ul', {}, r.estimates.map((e) => h('li', {}, e)))] : null);
}
