// DOM building from text nodes and attribute values only: data is never parsed as markup.

const SAFE_URL = /^(#|\/(?!\/)|blob:|data:image\/)/;

/** h('div', {class: 'x', onclick: fn}, 'text', child, [more]) -> HTMLElement. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if ((k === 'href' || k === 'src') && !SAFE_URL.test(String(v))) throw new Error(`unsafe ${k}: ${v}`);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
export function id(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled control: <div class="field"><label for>..</label> control <p class="err" aria-live> </div>. */
export function field(label, control, { hint, name } = {}) {
  if (!control.id) control.id = id(name || 'f');
  const err = h('p', { class: 'err', id: `${control.id}-err`, 'aria-live': 'polite' });
  const hintEl = hint ? h('p', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, err.id].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field', dataset: { param: name || '' } }, h('label', { for: control.id }, label),
    control, hintEl, err);
  wrap.error = (msg) => {
    err.textContent = msg || '';
    control.toggleAttribute('aria-invalid', Boolean(msg));
  };
  return wrap;
}

export function select(name, options, value) {
  const s = h('select', { name });
  for (const o of options) {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    s.append(h('option', { value: v, selected: v === value }, text));
  }
  return s;
}

export function usd(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  return `$${Number(v).toFixed(digits)}`;
}

export function ms(v) {
  if (v === null || v === undefined) return '—';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

export function pct(v, digits = 1) {
  if (v === null || v === undefined) return '—';
  return `${(v * 100).toFixed(digits)} %`;
}

export function table(headers, rows, { caption, cls } = {}) {
  return h('table', { class: cls || 'grid' },
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
}

export function section(title, ...children) {
  const hid = id('h');
  return h('section', { class: 'card', 'aria-labelledby': hid }, h('h2', { id: hid }, title), children);
}

export function debounce(fn, wait) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), wait);
  };
}

/** A time the API gave as epoch seconds or as an ISO 8601 string, shown in UTC. */
export function when(ts) {
  if (ts === null || ts === undefined || ts === '') return '—';
  const d = typeof ts === 'number' ? new Date(ts * 1000) : new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return `${d.toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}
