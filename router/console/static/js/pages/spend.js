// Spend: cost over time from the ledger (GET /v1/spend) by provider, model, rule or tenant, with the daily budget
// drawn as a line; provider latency percentiles over the same buckets. Charts: the vendored uPlot.

import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { api, auth } from '../api.js';
import { clear, field, h, section, select, table, usd } from '../dom.js';
import { errorBox, errorText } from '../views.js';

const PALETTE = ['#2457d6', '#e4572e', '#17a398', '#f0a500', '#8e44ad', '#5a6270', '#c2185b', '#2e7d32'];
const BUDGET = '#b3261e';

function chart(target, opts, data) {
  const width = Math.max(280, target.clientWidth || 600);
  const plot = new uPlot({ width, height: 300, ...opts }, data, target);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, target.clientWidth), height: 300 }));
  resize.observe(target);
  return () => { resize.disconnect(); plot.destroy(); };
}

export async function render(main) {
  const since = select('since', [['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days'], ['90d', 'last 90 days']], '7d');
  const bucket = select('bucket', [['day', 'day'], ['hour', 'hour']], 'day');
  const groupBy = select('group_by', ['provider', 'model', 'rule', 'tenant'], 'provider');
  const tenant = h('input', { type: 'text', name: 'tenant', placeholder: 'every tenant' });
  const fields = { since: field('Window', since, { name: 'since' }), bucket: field('Bucket', bucket, { name: 'bucket' }),
    group_by: field('Group by', groupBy, { name: 'group_by' }), tenant: field('Tenant (admin)', tenant, { name: 'tenant' }) };
  const form = h('form', { class: 'row', 'aria-label': 'Spend filters' }, fields.since, fields.bucket, fields.group_by,
    auth.admin ? fields.tenant : null, h('div', { class: 'field' }, h('span', { class: 'sr-only' }, 'Apply'), h('button', { type: 'submit', class: 'primary' }, 'Show')));
  const costBox = h('div', { class: 'uplot-box', 'data-testid': 'cost-chart' });
  const costSummary = h('div', { 'data-testid': 'spend-summary' });
  const latencyBox = h('div', { class: 'uplot-box', 'data-testid': 'latency-chart' });
  clear(main, h('h1', {}, 'Spend'), section('What to show', form), section('Cost over time', costBox, costSummary),
    section('Provider latency over time', latencyBox));
  let destroy = [];
  let ticket = 0;

  async function load() {
    const mine = ++ticket;
    for (const f of Object.values(fields)) f.error('');
    const q = new URLSearchParams({ since: since.value, bucket: bucket.value, group_by: groupBy.value });
    if (auth.admin && tenant.value.trim()) q.set('tenant', tenant.value.trim());
    let r;
    try {
      r = await api(`/v1/spend?${q}`);
    } catch (err) {
      if (mine !== ticket) return;
      const target = fields[err.param];
      if (target) target.error(errorText(err));
      clear(costBox, target ? null : errorBox(err));
      clear(costSummary);
      clear(latencyBox);
      return;
    }
    if (mine === ticket) draw(r);
  }

  function draw(r) {
    for (const d of destroy) d();
    destroy = [];
    const xs = r.buckets;
    clear(costBox);
    clear(latencyBox);
    const daily = r.budget.daily_usd;
    const budgetLines = [];
    if (r.bucket === 'day') {
      if (daily !== null && daily !== undefined) budgetLines.push({ label: `budget ${usd(daily, 2)}/day`, value: daily });
      for (const [t, v] of Object.entries(r.budget.tenants || {})) budgetLines.push({ label: `budget ${t} ${usd(v, 2)}/day`, value: v });
    }
    if (!r.series.length) {
      costBox.append(h('p', { class: 'muted' }, 'Nothing billed in this window.'));
    } else {
      const series = [{ label: 'time' }, ...r.series.map((s, i) => ({ label: s.label, stroke: PALETTE[i % PALETTE.length],
        fill: `${PALETTE[i % PALETTE.length]}22`, width: 2, points: { show: xs.length < 60 }, value: (u, v) => (v === null ? '—' : usd(v)) })),
      ...budgetLines.map((b) => ({ label: b.label, stroke: BUDGET, width: 1.5, dash: [6, 4], points: { show: false }, value: () => usd(b.value, 2) }))];
      const data = [xs, ...r.series.map((s) => s.usd), ...budgetLines.map((b) => xs.map(() => b.value))];
      destroy.push(chart(costBox, {
        title: `USD per ${r.bucket} by ${r.group_by}`, series, scales: { x: { time: true } },
        axes: [{}, { values: (u, vals) => vals.map((v) => `$${v.toFixed(v < 1 ? 3 : 2)}`), size: 70 }],
      }, data));
    }
    clear(costSummary,
      h('p', {}, `Total ${usd(r.total_usd)} ${r.tenant ? `for tenant ${r.tenant}` : 'for every tenant'}; `
        + (daily !== null && daily !== undefined ? `daily budget ${usd(daily, 2)} (on exceed: ${r.budget.on_exceed}).` : 'no daily budget.')
        + (r.bucket === 'hour' && budgetLines.length === 0 && daily !== null ? ' Budget lines are daily: choose day buckets to see them.' : '')),
      h('div', { class: 'table-wrap' }, table([r.group_by, 'Attempts', 'Total', 'Share'], r.series.map((s) => [s.label,
        String(s.attempts.reduce((a, b) => a + b, 0)), usd(s.total_usd), r.total_usd ? `${((s.total_usd / r.total_usd) * 100).toFixed(1)} %` : '—']),
      { cls: 'grid spend-totals' })));

    if (!r.latency.length) {
      latencyBox.append(h('p', { class: 'muted' }, 'No successful provider calls in this window.'));
      return;
    }
    const lseries = [{ label: 'time' }];
    const ldata = [xs];
    r.latency.forEach((l, i) => {
      const color = PALETTE[i % PALETTE.length];
      lseries.push({ label: `${l.provider} p50`, stroke: color, width: 2, spanGaps: true, value: (u, v) => (v === null ? '—' : `${Math.round(v)} ms`) });
      lseries.push({ label: `${l.provider} p95`, stroke: color, width: 1.5, dash: [4, 3], spanGaps: true, value: (u, v) => (v === null ? '—' : `${Math.round(v)} ms`) });
      ldata.push(l.p50_ms, l.p95_ms);
    });
    destroy.push(chart(latencyBox, {
      title: `Provider latency per ${r.bucket} (p50 solid, p95 dashed)`, series: lseries, scales: { x: { time: true } },
      axes: [{}, { values: (u, vals) => vals.map((v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)), size: 70 }],
    }, ldata));
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  for (const s of [since, bucket, groupBy]) s.addEventListener('change', load);
  await load();
  return () => { for (const d of destroy) d(); };
}
