// Experiments: each experiment's report (GET /v1/experiments/{name}/report) with its intervals drawn.
// #/experiments lists the running policy's experiments; #/experiments/NAME opens one (a shadow's name works too).

import { api } from '../api.js';
import { clear, field, h, ms, pct, section, table, usd } from '../dom.js';
import { errorBars, wilson } from '../charts.js';
import { errorBox } from '../views.js';

export async function render(main, [name]) {
  const listBox = h('div', {});
  const input = h('input', { type: 'text', name: 'experiment', value: name || '', autocomplete: 'off' });
  const open = h('form', { class: 'row', 'aria-label': 'Open an experiment report' },
    field('Experiment or shadow name', input, { name: 'experiment' }), h('button', { type: 'submit' }, 'Open report'));
  open.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (input.value.trim()) window.location.hash = `#/experiments/${encodeURIComponent(input.value.trim())}`;
  });
  const reportBox = h('div', { 'data-testid': 'report' });
  clear(main, h('h1', {}, 'Experiments'), section('Running experiments', listBox, open),
    name ? section(`Report: ${name}`, reportBox) : null);

  try {
    const policy = await api('/v1/policy');
    const exps = policy.experiments || [];
    clear(listBox, exps.length ? h('div', { class: 'table-wrap' }, table(['Experiment', 'Arms', 'Applies to', 'Sticky by', 'Holdout'], exps.map((e) => [
      h('a', { href: `#/experiments/${encodeURIComponent(e.name)}` }, e.name),
      e.arms.map((a) => `${a.name} (${a.weight} → ${a.route})`).join(', '),
      (e.applies_to_rules || []).join(', ') || 'every rule', e.sticky_by, pct(e.holdout || 0, 0)]))) : h('p', {}, 'The running policy has no experiments.'));
  } catch (err) {
    clear(listBox, errorBox(err));
  }
  if (!name) return null;

  try {
    const r = await api(`/v1/experiments/${encodeURIComponent(name)}/report`);
    drawReport(reportBox, r);
  } catch (err) {
    clear(reportBox, errorBox(err));
  }
  return null;
}

function drawReport(box, r) {
  const arms = r.arms;
  clear(box,
    h('p', {}, `${r.edits} edits · baseline `, h('strong', {}, r.baseline || '—'), ' · intervals are 95 %.'),
    h('div', { class: 'table-wrap' }, table(['Arm', 'Edits', 'Succeeded', 'p50', 'p95', 'Cost / edit', 'Total', 'Feedback', 'Acceptance', 'Drift'],
      arms.map((a) => [h('strong', {}, a.arm), String(a.count), `${a.succeeded} (${pct(a.success_rate)})`, ms(a.latency_p50_ms),
        ms(a.latency_p95_ms), usd(a.cost_mean_usd), usd(a.cost_total_usd), String(a.feedback_count), pct(a.acceptance_rate),
        a.preservation_mean === null ? '—' : a.preservation_mean.toFixed(2)]), { cls: 'grid arms', caption: 'Arms' })),
    h('h3', {}, 'Acceptance per arm (Wilson interval)'),
    h('div', { class: 'chart', 'data-testid': 'chart-acceptance' }, errorBars(arms.map((a) => {
      const n = a.feedback_count;
      const k = a.acceptance_rate === null ? 0 : Math.round(a.acceptance_rate * n);
      const [lo, hi] = wilson(k, n);
      return { label: `${a.arm} (n=${n})`, value: a.acceptance_rate, lo, hi };
    }), { title: 'Acceptance rate per arm', domain: [0, 1], format: (v) => `${(v * 100).toFixed(0)}%` })),
    h('h3', {}, `Against the baseline (${r.baseline || '—'})`),
    r.differences.length ? [
      h('p', { class: 'hint' }, 'Acceptance difference, percentage points (Newcombe’s interval; the dashed line is no difference):'),
      h('div', { class: 'chart', 'data-testid': 'chart-acceptance-diff' }, errorBars(r.differences.map((d) => ({
        label: `${d.arm} − ${d.versus}`, value: d.acceptance_diff, lo: d.acceptance_ci95 && d.acceptance_ci95[0], hi: d.acceptance_ci95 && d.acceptance_ci95[1],
      })), { title: 'Acceptance difference (Newcombe interval)', zero: 0, format: (v) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(0)} pts` })),
      h('p', { class: 'hint' }, 'Cost per edit difference, USD (Welch’s interval):'),
      h('div', { class: 'chart', 'data-testid': 'chart-cost-diff' }, errorBars(r.differences.map((d) => ({
        label: `${d.arm} − ${d.versus}`, value: d.cost_diff_usd, lo: d.cost_ci95 && d.cost_ci95[0], hi: d.cost_ci95 && d.cost_ci95[1],
      })), { title: 'Cost per edit difference (Welch interval)', zero: 0, format: (v) => `${v >= 0 ? '+' : '−'}$${Math.abs(v).toFixed(4)}` })),
      h('div', { class: 'table-wrap' }, table(['Arm', 'Versus', 'Acceptance Δ', '95 % interval', 'Cost Δ / edit', '95 % interval'],
        r.differences.map((d) => [d.arm, d.versus, d.acceptance_diff === null ? '—' : `${(d.acceptance_diff * 100).toFixed(1)} pts`,
          d.acceptance_ci95 ? `[${(d.acceptance_ci95[0] * 100).toFixed(1)}, ${(d.acceptance_ci95[1] * 100).toFixed(1)}]` : '—',
          usd(d.cost_diff_usd), d.cost_ci95 ? `[${usd(d.cost_ci95[0])}, ${usd(d.cost_ci95[1])}]` : '—']), { cls: 'grid diffs' })),
    ] : h('p', {}, 'One arm only so far: nothing to compare against.'));
}
