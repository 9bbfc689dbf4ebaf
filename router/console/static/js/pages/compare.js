// Compare providers: one input sent to several providers at once (POST /v1/compare), results side by side with
// cost, latency, preservation or the error; picking a winner records feedback (the winner accepted, the others
// rejected), which the experiment reports count.

import { api, auth } from '../api.js';
import { clear, field, h, ms, pct, section, select, usd } from '../dom.js';
import { MaskEditor } from '../mask.js';
import { apiImage, errorBox, errorText } from '../views.js';

export async function render(main) {
  const state = { file: null };
  const fileInput = h('input', { type: 'file', name: 'image', id: 'compare-file', accept: 'image/png,image/jpeg,image/webp' });
  const imageField = field('Source image', fileInput, { name: 'image' });
  const drop = h('div', { class: 'drop' }, h('p', {}, 'Drop a PNG, JPEG or WebP here, or choose a file.'), imageField);
  const editor = new MaskEditor({});
  const prompt = h('textarea', { name: 'prompt', rows: '2', placeholder: 'What to change' });
  const tier = select('tier', ['standard', 'pro'], 'standard');
  const quality = select('quality', ['final', 'draft'], 'final');
  const providersBox = h('fieldset', { class: 'row', 'data-testid': 'providers' }, h('legend', {}, 'Providers'));
  const fields = { prompt: field('Prompt', prompt, { name: 'prompt' }), tier: field('Tier', tier, { name: 'tier' }),
    quality: field('Quality', quality, { name: 'quality' }) };
  const providersError = h('p', { class: 'err', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run compare');
  const status = h('p', { class: 'hint', role: 'status' });
  const grid = h('div', { class: 'cgrid', 'data-testid': 'compare-grid' });
  const form = h('form', { 'aria-label': 'Compare request', novalidate: true, class: 'edit-layout' },
    h('div', { class: 'col' }, drop, editor.el),
    h('div', { class: 'col' }, fields.prompt, h('div', { class: 'row' }, fields.tier, fields.quality), providersBox,
      providersError, h('div', { class: 'buttons' }, run), status));
  clear(main, h('h1', {}, 'Compare providers'), section('One input, several providers', form), section('Results', grid));
  grid.closest('section').hidden = true;

  try {
    const policy = await api('/v1/policy');
    const names = auth.admin || policy.configured ? policy.configured : Object.keys(policy.providers);
    for (const name of names) {
      providersBox.append(h('label', { class: 'seg' }, h('input', { type: 'checkbox', name: 'providers', value: name,
        checked: name !== 'local' }), ` ${name}`));
    }
  } catch (err) {
    providersBox.append(errorBox(err));
  }

  async function useFile(file) {
    state.file = file;
    imageField.error('');
    try {
      await editor.load(URL.createObjectURL(file));
      drop.querySelector('p').textContent = `${file.name || 'image'} · ${editor.width}×${editor.height} (paint a mask below if the edit is local)`;
    } catch {
      state.file = null;
      imageField.error(`${file.name || 'The file'} is not an image the browser can read.`);
    }
  }
  fileInput.addEventListener('change', () => fileInput.files[0] && useFile(fileInput.files[0]));
  drop.addEventListener('dragover', (ev) => ev.preventDefault());
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer.files[0]) useFile(ev.dataTransfer.files[0]);
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const f of [imageField, ...Object.values(fields)]) f.error('');
    providersError.textContent = '';
    if (!state.file) {
      imageField.error('Choose a source image first.');
      return;
    }
    const chosen = [...providersBox.querySelectorAll('input:checked')].map((c) => c.value);
    const fd = new FormData();
    fd.append('image', state.file, state.file.name || 'image');
    const mask = await editor.blob();
    if (mask) {
      fd.append('mask', mask, 'mask.png');
      fd.append('mask_convention', 'alpha');
    }
    fd.append('prompt', prompt.value.trim());
    fd.append('tier', tier.value);
    fd.append('quality', quality.value);
    run.disabled = true;
    status.textContent = `Running on ${chosen.length ? chosen.join(', ') : 'the policy’s candidates'}…`;
    try {
      const q = chosen.length ? `?providers=${encodeURIComponent(chosen.join(','))}` : '';
      const r = await api(`/v1/compare${q}`, { method: 'POST', form: fd });
      status.textContent = `Session ${r.session_id}: ${r.results.length} result(s).`;
      draw(r);
    } catch (err) {
      status.textContent = '';
      const target = err.param === 'providers' ? null : (err.param === 'image' ? imageField : fields[err.param]);
      if (target) target.error(errorText(err));
      else providersError.textContent = errorText(err);
    } finally {
      run.disabled = false;
    }
  });

  function draw(r) {
    grid.closest('section').hidden = false;
    const cells = r.results.map((res) => {
      const cell = h('article', { class: 'ccell', 'data-provider': res.provider, 'aria-label': res.provider });
      const image = (res.images || [])[0];
      cell.append(h('h3', {}, res.provider, res.model ? h('span', { class: 'muted' }, ` · ${res.model}`) : null));
      if (res.status === 'failed' || res.error) {
        cell.append(h('p', { class: 'err' }, errorText(res.error || {})));
        return cell;
      }
      const p = res.preservation || {};
      cell.append(image ? apiImage(image.url, `Result from ${res.provider}`) : null,
        h('dl', { class: 'kv' },
          h('dt', {}, 'Cost'), h('dd', { class: 'num' }, `${usd(res.cost && res.cost.actual_usd)} (est. ${usd(res.cost && res.cost.estimated_usd)})`),
          h('dt', {}, 'Latency'), h('dd', { class: 'num' }, `${ms(res.latency_ms && res.latency_ms.total)} (provider ${ms(res.latency_ms && res.latency_ms.provider)})`),
          h('dt', {}, 'Preservation'), h('dd', { class: 'num' }, p.mean_abs_diff === undefined ? '—' : `diff ${p.mean_abs_diff} · changed ${pct(p.changed_share)}`)));
      const win = h('button', { type: 'button' }, 'Pick as winner');
      win.addEventListener('click', () => pick(res, r));
      cell.append(win, h('p', { class: 'status', role: 'status' }));
      return cell;
    });
    clear(grid, cells);
    const old = main.querySelector('[data-testid=compare-session]');
    if (old) old.remove();
    grid.after(h('p', { class: 'hint', 'data-testid': 'compare-session' }, 'Each result is a version of session ',
      h('a', { href: `#/session/${encodeURIComponent(r.session_id)}` }, r.session_id), '.'));
  }

  async function pick(winner, r) {
    const done = [];
    for (const res of r.results) {
      if (!res.id || res.status === 'failed') continue;
      const verdict = res.id === winner.id ? 'accepted' : 'rejected';
      try {
        await api(`/v1/edits/${encodeURIComponent(res.id)}/feedback`, { method: 'POST',
          json: { verdict, reason: `compare: ${winner.provider} picked` } });
        done.push(res.provider);
      } catch (err) {
        grid.append(errorBox(err));
      }
    }
    for (const cell of grid.querySelectorAll('.ccell')) {
      const isWinner = cell.dataset.provider === winner.provider;
      cell.classList.toggle('winner', isWinner);
      const s = cell.querySelector('.status');
      if (s) s.textContent = isWinner ? 'Winner: recorded as accepted.' : 'Recorded as rejected.';
    }
  }
  return null;
}
