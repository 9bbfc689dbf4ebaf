// Small SVG charts built with createElementNS (no markup strings): intervals drawn as error bars.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Horizontal error bars: rows of {label, value, lo, hi, note}; a reference line at `zero` (0 for differences).
 * `format` turns a number into axis and value text. Rows without an interval show the point alone.
 */
export function errorBars(rows, { title, format = (v) => v.toFixed(3), zero = null, width = 820, domain = null } = {}) {
  const labelW = 150;
  const valueW = 250;
  const rowH = 34;
  const top = 28;
  const plotW = width - labelW - valueW - 20;
  const height = top + rows.length * rowH + 24;
  const values = rows.flatMap((r) => [r.value, r.lo, r.hi]).filter((v) => v !== null && v !== undefined && Number.isFinite(v));
  if (zero !== null) values.push(zero);
  let min = Math.min(...values);
  let max = Math.max(...values);
  if (!values.length) { min = 0; max = 1; }
  if (min === max) { min -= 0.5 * (Math.abs(min) || 1); max += 0.5 * (Math.abs(max) || 1); }
  const pad = (max - min) * 0.08;
  min -= pad;
  max += pad;
  if (domain) [min, max] = domain;
  const x = (v) => labelW + ((v - min) / (max - min)) * plotW;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title || 'intervals' });
  if (title) svg.append(s('title', {}, title));
  svg.append(s('text', { x: labelW, y: 16, class: 'axis', 'font-size': 12, fill: '#5a6270' }, format(min)));
  svg.append(s('text', { x: labelW + plotW, y: 16, 'text-anchor': 'end', 'font-size': 12, fill: '#5a6270' }, format(max)));
  svg.append(s('line', { x1: labelW, x2: labelW + plotW, y1: top - 4, y2: top - 4, stroke: '#c5cbd6' }));
  if (zero !== null) {
    svg.append(s('line', { x1: x(zero), x2: x(zero), y1: top - 8, y2: height - 18, stroke: '#8a93a3', 'stroke-dasharray': '4 3' }));
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    svg.append(s('text', { x: 0, y: y + 4, 'font-size': 13, fill: '#1b1f24' }, r.label));
    const g = s('g', { class: 'bar', 'data-label': r.label });
    if (r.lo !== null && r.lo !== undefined && r.hi !== null && r.hi !== undefined) {
      g.append(s('line', { x1: x(r.lo), x2: x(r.hi), y1: y, y2: y, stroke: '#2457d6', 'stroke-width': 2 }));
      for (const v of [r.lo, r.hi]) g.append(s('line', { x1: x(v), x2: x(v), y1: y - 7, y2: y + 7, stroke: '#2457d6', 'stroke-width': 2 }));
    }
    if (r.value !== null && r.value !== undefined) g.append(s('circle', { cx: x(r.value), cy: y, r: 5, fill: '#14213d' }));
    svg.append(g);
    const text = r.value === null || r.value === undefined ? 'no data'
      : `${format(r.value)}${r.lo !== null && r.lo !== undefined ? ` [${format(r.lo)}, ${format(r.hi)}]` : ''}`;
    svg.append(s('text', { x: labelW + plotW + 12, y: y + 4, 'font-size': 12, fill: '#1b1f24' }, text));
  });
  return svg;
}

/** Wilson's score interval for a proportion (the one the API's reports use for single arms). */
export function wilson(successes, n, z = 1.959964) {
  if (!n) return [null, null];
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
