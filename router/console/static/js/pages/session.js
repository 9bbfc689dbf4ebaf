// Session: the version tree with thumbnails; each version's details; continue, retry, compare two, delete.
// #/session lists the latest sessions; #/session/ID/N opens one with version N selected.

import { api } from '../api.js';
import { clear, field, h, ms, section, select, table, usd, when } from '../dom.js';
import { apiImage, attemptsTable, errorBox, errorText, latencyBars } from '../views.js';

async function list(main) {
  const box = h('div', {});
  clear(main, h('h1', {}, 'Sessions'), section('Latest sessions', box));
  try {
    const page = await api('/v1/sessions?limit=50');
    if (!page.data.length) {
      clear(box, h('p', {}, 'No sessions yet: run an edit on the ', h('a', { href: '#/edit' }, 'Edit page'), '.'));
      return;
    }
    clear(box, h('div', { class: 'table-wrap' }, table(['Session', 'Created', 'Versions', 'Latest'], page.data.map((s) => [
      h('a', { href: `#/session/${encodeURIComponent(s.id)}` }, s.id), when(s.created), String(s.version_count),
      s.latest_version === null ? '—' : `v${s.latest_version} · ${s.latest_status}`]))));
  } catch (err) {
    clear(box, errorBox(err));
  }
}

function children(versions) {
  const kids = new Map();
  for (const v of versions) {
    const key = v.parent === null ? 'root' : v.parent;
    if (!kids.has(key)) kids.set(key, []);
    kids.get(key).push(v);
  }
  return kids;
}

export async function render(main, [sessionId, selected]) {
  if (!sessionId) return list(main);
  const base = `/v1/sessions/${encodeURIComponent(sessionId)}`;
  const treeBox = h('div', { 'data-testid': 'tree' });
  const detailBox = h('div', { 'data-testid': 'version-detail' });
  const compareBox = h('div', { 'data-testid': 'compare' });
  const status = h('p', { class: 'status', role: 'status' });
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete session…');
  clear(main, h('h1', {}, 'Session ', h('code', {}, sessionId)), status,
    h('div', { class: 'session-layout' },
      h('div', {}, section('Version tree', treeBox), section('Compare two versions', compareBox), section('Delete', del)),
      h('div', {}, section('Version', detailBox))));

  let session;
  try {
    session = await api(base);
  } catch (err) {
    clear(main, h('h1', {}, 'Session'), errorBox(err), h('p', {}, h('a', { href: '#/session' }, 'All sessions')));
    return null;
  }
  const versions = session.versions;
  const byNumber = new Map(versions.map((v) => [v.number, v]));
  let current = byNumber.has(Number(selected)) ? Number(selected) : versions[versions.length - 1].number;

  del.addEventListener('click', async () => {
    if (!del.dataset.armed) {
      del.dataset.armed = '1';
      del.textContent = 'Really delete this session, its versions and images? Click again';
      return;
    }
    try {
      await api(base, { method: 'DELETE' });
      clear(main, h('h1', {}, 'Session deleted'), h('p', { role: 'status' }, `${sessionId} and its images are gone.`),
        h('a', { href: '#/session' }, 'All sessions'));
    } catch (err) {
      status.textContent = '';
      del.after(errorBox(err));
    }
  });

  function node(v, kids) {
    const thumb = v.image ? apiImage(v.image.url, `Version ${v.number}`) : h('span', { class: 'muted' }, 'no image');
    const pick = h('button', { type: 'button', class: 'pick', 'aria-pressed': String(v.number === current) },
      h('strong', {}, `v${v.number}`), ' ', h('span', { class: `state-${v.status}` }, v.status),
      h('br'), h('span', { class: 'muted' }, v.number === 0 ? 'source' : `${v.provider || '—'} · ${(v.prompt || '').slice(0, 60)}`));
    pick.addEventListener('click', () => {
      current = v.number;
      window.history.replaceState(null, '', `#/session/${encodeURIComponent(sessionId)}/${v.number}`);
      drawTree();
      drawDetail();
    });
    return h('li', {}, h('div', { class: `node${v.number === current ? ' selected' : ''}`, 'data-version': String(v.number) }, thumb, pick),
      (kids.get(v.number) || []).length ? h('ul', {}, kids.get(v.number).map((c) => node(c, kids))) : null);
  }

  function drawTree() {
    const kids = children(versions);
    clear(treeBox, h('ul', { class: 'tree', 'aria-label': 'Versions, branching from their parents' },
      (kids.get('root') || []).map((v) => node(v, kids))));
  }

  function drawDetail() {
    const v = byNumber.get(current);
    const actions = h('div', { class: 'buttons' });
    if (v.image) {
      actions.append(h('a', { class: 'button', href: `#/edit/${encodeURIComponent(sessionId)}/${v.number}`, role: 'button' },
        `Continue from v${v.number}`));
    }
    if (['failed', 'interrupted', 'canceled'].includes(v.status)) {
      const retry = h('button', { type: 'button' }, `Retry v${v.number}`);
      retry.addEventListener('click', async () => {
        retry.disabled = true;
        status.textContent = `Retrying v${v.number}…`;
        try {
          const r = await api(`${base}/versions/${v.number}/retry`, { method: 'POST' });
          window.location.hash = `#/session/${encodeURIComponent(sessionId)}/${r.version}`;
        } catch (err) {
          status.textContent = '';
          actions.after(errorBox(err));
          retry.disabled = false;
        }
      });
      actions.append(retry);
    }
    const s = v.settings || {};
    clear(detailBox,
      h('h3', {}, `v${v.number}${v.parent !== null ? ` (from v${v.parent})` : ''}${v.retry_of !== null ? ` · retry of v${v.retry_of}` : ''}`),
      v.image ? apiImage(v.image.url, `Version ${v.number}`, 'result-img') : null,
      actions,
      h('dl', { class: 'kv' },
        h('dt', {}, 'State'), h('dd', { class: `state-${v.status}` }, v.status),
        h('dt', {}, 'Prompt'), h('dd', {}, v.prompt || '—'),
        h('dt', {}, 'Chips'), h('dd', {}, (v.chips || []).join(', ') || '—'),
        h('dt', {}, 'Settings'), h('dd', {}, Object.keys(s).length ? ['mode', 'tier', 'quality', 'size', 'output_format', 'background', 'n']
          .filter((k) => s[k] !== undefined && s[k] !== null).map((k) => `${k} ${s[k]}`).join(' · ') : '—'),
        h('dt', {}, 'Provider'), h('dd', {}, `${v.provider || '—'} · ${v.model || '—'}${v.rule ? ` · rule ${v.rule}` : ''}`),
        h('dt', {}, 'Cost'), h('dd', {}, v.cost ? `estimate ${usd(v.cost.estimated_usd)} · actual ${usd(v.cost.actual_usd)}` : '—'),
        h('dt', {}, 'Latency'), h('dd', {}, v.latency_ms ? ms(v.latency_ms.total) : '—'),
        h('dt', {}, 'Created'), h('dd', {}, when(v.created)),
        v.chain_note ? [h('dt', {}, 'Chain'), h('dd', {}, v.chain_note)] : null,
        v.error ? [h('dt', {}, 'Error'), h('dd', { class: 'err' }, errorText(v.error))] : null),
      v.latency_ms ? latencyBars(v.latency_ms) : null);
    if (v.number > 0 && v.status === 'succeeded') {
      api(`/v1/edits/${encodeURIComponent(v.id)}`).then((e) => {
        if (current === v.number && e.route) detailBox.append(attemptsTable(e.route.attempts));
      }).catch(() => {});
    }
  }

  // Compare any two versions with images: a heat-map and the drift.
  const withImages = versions.filter((v) => v.image).map((v) => [String(v.number), `v${v.number}`]);
  const a = select('a', withImages, withImages.length ? withImages[0][0] : '');
  const b = select('b', withImages, withImages.length ? withImages[withImages.length - 1][0] : '');
  const out = h('div', { 'aria-live': 'polite' });
  const go = h('button', { type: 'button' }, 'Compare');
  go.addEventListener('click', async () => {
    clear(out, h('p', { class: 'hint' }, 'Measuring…'));
    try {
      const c = await api(`${base}/compare?a=${encodeURIComponent(a.value)}&b=${encodeURIComponent(b.value)}`);
      clear(out, h('p', { 'data-testid': 'drift' }, `v${c.a} → v${c.b}: mean difference ${c.drift.mean_abs_diff}, `
        + `${(c.drift.changed_share * 100).toFixed(1)} % of pixels changed`),
      apiImage(c.heatmap.url, `Difference heat-map v${c.a} → v${c.b}`, 'result-img heatmap-img'));
    } catch (err) {
      clear(out, errorBox(err));
    }
  });
  clear(compareBox, h('div', { class: 'row' }, field('From', a, { name: 'a' }), field('To', b, { name: 'b' })), go, out);

  drawTree();
  drawDetail();
  return null;
}
