// Views shared by the pages: the route decision, a result with its slider, the heat-map, the feedback form.

import { api, download, imageURL } from './api.js';
import { clear, field, h, ms, pct, select, table, usd } from './dom.js';

/** Output formats delivered as the model made them: no live previews, heat-map or raster copy. */
export const AS_MADE_FORMATS = ['gif', 'svg'];

export function errorText(err) {
  if (!err) return '';
  const code = err.code ? ` (${err.code}${err.status ? `, HTTP ${err.status}` : ''})` : '';
  return `${err.message || err}${code}`;
}

export function errorBox(err) {
  return h('p', { class: 'err', role: 'alert' }, errorText(err));
}

/** An <img> whose bytes come from the API with the bearer key. */
export function apiImage(url, alt, cls) {
  const img = h('img', { alt, class: cls || '', decoding: 'async' });
  if (url) {
    imageURL(url).then((src) => { img.src = src; }).catch((err) => { img.alt = `${alt} (${errorText(err)})`; });
  }
  return img;
}

/** The decision: the rule and why, every rule checked, candidates with estimates, what was dropped, the budget. */
export function decisionView(decision, { features, breakers } = {}) {
  const out = h('div', { class: 'decision' });
  if (decision.refusal) {
    out.append(h('p', { class: 'err', role: 'alert' }, `Refused: ${decision.refusal.message || decision.refusal.code
      || JSON.stringify(decision.refusal)}`));
  }
  const matched = (decision.trace || []).find((t) => t.matched);
  out.append(h('p', { class: 'rule' }, 'Rule ', h('strong', { 'data-testid': 'route-rule' }, decision.rule || '—'),
    matched ? ` — ${matched.why}` : ''));
  if (decision.experiment) out.append(h('p', {}, `Experiment ${decision.experiment}, arm ${decision.arm || '—'}`));
  const cands = decision.candidates || [];
  out.append(table(['#', 'Provider', 'Model', 'Estimate', 'Breaker'], cands.map((c, i) => [
    String(i + 1), h('span', { class: 'provider' }, c.provider), c.model, usd(c.estimate_usd),
    breakers ? (breakers[c.provider] || '—') : '—']), { caption: 'Candidates, in the order they are tried', cls: 'grid candidates' }));
  if ((decision.dropped || []).length) {
    out.append(table(['Dropped', 'Why'], decision.dropped.map((d) => [d.provider, (d.reasons || []).join('; ')]),
      { caption: 'Dropped providers', cls: 'grid dropped' }));
  }
  if (decision.budget) {
    const b = decision.budget;
    const left = b.limit_usd - b.spent_usd;
    out.append(h('p', { class: 'budget', 'data-testid': 'budget' }, `Budget today: ${usd(b.spent_usd)} spent of ${usd(b.limit_usd)}`
      + ` (${usd(left)} left) · this edit ≈ ${usd(b.estimate_usd)} · ${b.action}`
      + (b.shadow_usd ? ` · shadow ${usd(b.shadow_usd)}` : '')));
  }
  const trace = h('details', {}, h('summary', {}, `Every rule checked (${(decision.trace || []).length})`),
    h('ol', { class: 'trace' }, (decision.trace || []).map((t) => h('li', { class: t.matched ? 'hit' : '' },
      h('strong', {}, t.rule), `: ${t.matched ? 'matched' : 'no'} — ${t.why}`))));
  out.append(trace);
  if (features) {
    out.append(h('details', {}, h('summary', {}, 'Features the policy saw'),
      h('dl', { class: 'kv' }, Object.entries(features).flatMap(([k, v]) => [h('dt', {}, k),
        h('dd', {}, typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : JSON.stringify(v))]))));
  }
  return out;
}

/** Before and after on top of each other; a range input moves the split (keyboard: arrows). */
export function slider(beforeUrl, afterUrl, label = 'Source and result') {
  const before = apiImage(beforeUrl, 'Source', 'slide-before');
  const after = apiImage(afterUrl, 'Result', 'slide-after');
  const clip = h('div', { class: 'slide-clip' }, after);
  const range = h('input', { type: 'range', min: '0', max: '100', value: '50', 'aria-label': 'Split between source and result' });
  const set = () => {
    clip.style.clipPath = `inset(0 0 0 ${range.value}%)`;
    line.style.left = `${range.value}%`;
  };
  const line = h('div', { class: 'slide-line' });
  range.addEventListener('input', set);
  const box = h('figure', { class: 'slider' }, h('div', { class: 'slide-stage' }, before, clip, line), range,
    h('figcaption', {}, `${label}: source on the left, result on the right`));
  set();
  return box;
}

export function latencyBars(latency) {
  if (!latency) return h('p', {}, '—');
  const parts = ['intake', 'queueing', 'provider', 'normalize'].filter((k) => latency[k] !== undefined);
  const total = latency.total || parts.reduce((s, k) => s + latency[k], 0) || 1;
  const bar = h('div', { class: 'stack', role: 'img', 'aria-label': parts.map((k) => `${k} ${ms(latency[k])}`).join(', ') },
    parts.map((k) => {
      const seg = h('span', { class: `seg-${k}`, title: `${k} ${ms(latency[k])}` });
      seg.style.width = `${Math.max(0.5, (latency[k] / total) * 100)}%`;
      return seg;
    }));
  return h('div', { class: 'latency' }, bar, h('ul', { class: 'legend' },
    parts.map((k) => h('li', {}, h('span', { class: `swatch seg-${k}` }), `${k} ${ms(latency[k])}`)),
    h('li', {}, `total ${ms(latency.total)}`)));
}

export function attemptsTable(attempts) {
  return table(['Provider', 'Model', 'Outcome', 'Error', 'Latency'], (attempts || []).map((a) => [a.provider, a.model,
    a.outcome, a.error || '', ms(a.latency_ms)]), { caption: 'Attempts', cls: 'grid attempts' });
}

export function feedbackForm(editId, { compact, onSent } = {}) {
  const verdict = select('verdict', [['', '—'], ['accepted', 'Accept'], ['rejected', 'Reject']], '');
  const rating = select('rating', [['', '—'], '1', '2', '3', '4', '5'], '');
  const reason = h('input', { type: 'text', name: 'reason', maxlength: '2000' });
  const status = h('p', { class: 'status', role: 'status' });
  const fVerdict = field('Verdict', verdict, { name: 'verdict' });
  const form = h('form', { class: compact ? 'feedback compact' : 'feedback', 'aria-label': 'Feedback' },
    fVerdict, field('Rating', rating, { name: 'rating' }),
    compact ? null : field('Reason', reason, { name: 'reason' }),
    h('button', { type: 'submit' }, 'Send feedback'), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fVerdict.error('');
    const body = {};
    if (verdict.value) body.verdict = verdict.value;
    if (rating.value) body.rating = Number(rating.value);
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      const r = await api(`/v1/edits/${encodeURIComponent(editId)}/feedback`, { method: 'POST', json: body });
      status.textContent = `Feedback recorded (${r.verdict || 'no verdict'}${r.rating ? `, ${r.rating}/5` : ''}).`;
      if (onSent) onSent(r);
    } catch (err) {
      fVerdict.error(errorText(err));
    }
  });
  return form;
}

/** A result: slider, heat-map, preservation, cost, latency, route trace, download and feedback. */
export function resultView(edit) {
  const box = h('div', { class: 'result', 'data-testid': 'result' });
  const image = edit.image || (edit.images || [])[0];
  const source = edit.inputs && edit.inputs.source;
  box.append(h('div', { class: 'two' },
    source && image ? slider(source.url, image.url) : h('div', {}, image ? apiImage(image.url, 'Result', 'result-img') : 'No image'),
    h('figure', { class: 'heat' }, h('div', { class: 'heat-slot', 'data-testid': 'heatmap' }, h('p', { class: 'hint' }, 'Difference heat-map…')),
      h('figcaption', {}, 'Difference heat-map (source → result)'))));
  const heatSlot = box.querySelector('.heat-slot');
  if (image && AS_MADE_FORMATS.includes(image.format)) {
    clear(heatSlot, h('p', { class: 'hint' }, `No heat-map: a ${image.format.toUpperCase()} is delivered as the model made it, not as pixels to compare.`));
  } else if (edit.session_id && edit.version) {
    api(`/v1/sessions/${encodeURIComponent(edit.session_id)}/compare?a=${edit.parent_version ?? 0}&b=${edit.version}`)
      .then((c) => clear(heatSlot, apiImage(c.heatmap.url, 'Difference heat-map', 'heatmap-img'),
        h('p', {}, `drift: mean ${c.drift.mean_abs_diff} · changed ${pct(c.drift.changed_share)}`)))
      .catch((err) => clear(heatSlot, errorBox(err)));
  }
  const p = edit.preservation || {};
  const c = edit.cost || {};
  box.append(h('div', { class: 'facts' },
    h('dl', { class: 'kv' },
      h('dt', {}, 'Provider'), h('dd', {}, `${edit.provider || '—'} · ${edit.model || '—'}${edit.emulated ? ' (emulated)' : ''}`),
      h('dt', {}, 'Cost'), h('dd', { 'data-testid': 'cost' }, `estimate ${usd(c.estimated_usd)} · actual ${usd(c.actual_usd)}`),
      h('dt', {}, 'Preservation'), h('dd', {}, p.mean_abs_diff === undefined ? '—'
        : `mean diff ${p.mean_abs_diff} · changed ${pct(p.changed_share)} (${p.region || ''}${p.mask_locked ? ', mask-locked' : ''})`),
      h('dt', {}, 'Session'), h('dd', {}, edit.session_id ? h('a', { href: `#/session/${encodeURIComponent(edit.session_id)}` },
        `${edit.session_id} · v${edit.version}`) : '—'),
      (edit.warnings || []).length ? [h('dt', {}, 'Warnings'), h('dd', {}, edit.warnings.map((w) => (typeof w === 'string' ? w : JSON.stringify(w))).join('; '))] : null),
    h('div', {}, h('h3', {}, 'Latency'), latencyBars(edit.latency_ms))));
  const route = edit.route || {};
  box.append(h('details', { class: 'trace-box' }, h('summary', {}, `Route: ${route.rule || '—'} · ${(route.attempts || []).length} attempt(s), ${route.fallbacks_taken || 0} fallback(s)`),
    attemptsTable(route.attempts), decisionView({ ...route, candidates: (route.candidates || []).map((p2) => ({ provider: p2 })) })));
  const images = edit.images || (image ? [image] : []);
  // an animation or a vector document is offered as the model made it (a canvas would keep one raster frame)
  const formatsOf = (img) => (AS_MADE_FORMATS.includes(img.format) ? [img.format] : ['png', 'jpeg', 'webp']);
  box.append(h('div', { class: 'buttons', 'aria-label': 'Downloads' }, images.flatMap((img, i) => formatsOf(img).map((fmt) => {
    const own = fmt === img.format;
    const b = h('button', { type: 'button', title: own ? 'The stored result, byte for byte' : 'Re-encoded in this browser from the stored result' },
      `Download ${images.length > 1 ? `#${i + 1} ` : ''}${fmt.toUpperCase()}${own ? ` (as stored, ${img.width}×${img.height})` : ''}`);
    b.addEventListener('click', () => download(img.url, `${edit.id}-${i + 1}.${fmt === 'jpeg' ? 'jpg' : fmt}`, own ? null : fmt));
    return b;
  }))));
  if (edit.id) box.append(h('h3', {}, 'Feedback'), feedbackForm(edit.id));
  return box;
}
