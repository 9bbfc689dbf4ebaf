// Edit: upload, mask, chips and settings; the route preview as the request changes; run with live progress; result.
// #/edit starts from an upload; #/edit/SESSION/VERSION continues a session from that version.

import { api, ApiError, events, imageURL } from '../api.js';
import { clear, debounce, field, h, ms, section, select, usd } from '../dom.js';
import { MaskEditor } from '../mask.js';
import { AS_MADE_FORMATS, decisionView, errorBox, errorText, resultView } from '../views.js';

const TYPES = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };

/** The image type by its first bytes, as the API decides it (never by the file name). */
async function sniff(file) {
  const b = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (String.fromCharCode(...b.slice(0, 4)) === 'RIFF' && String.fromCharCode(...b.slice(8, 12)) === 'WEBP') return 'webp';
  return null;
}

export async function render(main, [sessionId, version]) {
  const state = { file: null, refs: [], controller: null, preview: 0, parentUrl: null };
  const continuing = Boolean(sessionId);

  // --- source ---------------------------------------------------------------------------------
  const fileInput = h('input', { type: 'file', name: 'image', accept: 'image/png,image/jpeg,image/webp' });
  const drop = h('div', { class: 'drop', 'data-testid': 'drop' },
    h('p', {}, 'Drop a PNG, JPEG or WebP here, or choose a file.'), fileInput);
  const imageField = field('Source image', drop, { name: 'image' });
  fileInput.setAttribute('aria-describedby', drop.getAttribute('aria-describedby'));
  drop.removeAttribute('aria-describedby');
  imageField.querySelector('label').setAttribute('for', fileInput.id = 'source-file');
  const editor = new MaskEditor({ onChange: () => changed() });
  const maskField = h('div', { class: 'field', dataset: { param: 'mask' } }, editor.el,
    h('p', { class: 'err', 'aria-live': 'polite' }));
  maskField.error = (m) => { maskField.querySelector('.err').textContent = m || ''; };

  async function useFile(file) {
    imageField.error('');
    const kind = await sniff(file);
    if (!kind) {
      imageField.error(`${file.name || 'The file'} is not a PNG, JPEG or WebP image (checked by its bytes, not its name).`);
      return;
    }
    state.file = file;
    await editor.load(URL.createObjectURL(file));
    drop.classList.add('has-file');
    drop.querySelector('p').textContent = `${file.name || 'image'} · ${kind} · ${editor.width}×${editor.height}`;
    changed();
  }
  fileInput.addEventListener('change', () => fileInput.files[0] && useFile(fileInput.files[0]));
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer.files[0];
    if (f) useFile(f);
  });

  // --- request --------------------------------------------------------------------------------
  const prompt = h('textarea', { name: 'prompt', rows: '3', required: true, placeholder: 'What to change, e.g. "make the background a sunny beach"' });
  const mode = select('mode', [['inpaint', 'Edit (inpaint)'], ['variation', 'Variation'], ['outpaint', 'Outpaint (extend the frame)']], 'inpaint');
  const aspect = select('aspect', ['9:16', '16:9', '1:1', '4:5', '3:2', '2:3'], '9:16');
  const anchor = select('anchor', ['center', 'top', 'bottom', 'left', 'right', 'top-left', 'top-right', 'bottom-left', 'bottom-right'], 'center');
  const outpaintBox = h('div', { class: 'row', hidden: true }, field('Aspect', aspect, { name: 'aspect' }), field('Anchor', anchor, { name: 'anchor' }));
  const tierName = 'tier';
  const tier = h('fieldset', { class: 'seg-group' }, h('legend', {}, 'Tier'),
    ['standard', 'pro'].map((t) => h('label', { class: 'seg' }, h('input', { type: 'radio', name: tierName, value: t, checked: t === 'standard' }), ` ${t}`)));
  const quality = select('quality', [['final', 'final'], ['draft', 'draft']], 'final');
  const size = select('size', [['keep', 'keep (the source’s)'], ['auto', 'auto'], '1024x1024', '1536x1024', '1024x1536', '2048x2048', '3840x2160'], 'keep');
  const format = select('output_format', ['png', 'jpeg', 'webp', ...AS_MADE_FORMATS], 'png'); // gif, svg: newer GPT Image models
  const background = select('background', ['auto', 'opaque', 'transparent'], 'auto');
  const n = h('input', { type: 'number', name: 'n', min: '1', max: '10', value: '1' });
  const partials = select('partial_images', ['0', '1', '2', '3'], '2');
  const refsInput = h('input', { type: 'file', name: 'reference', multiple: true, accept: 'image/png,image/jpeg,image/webp' });
  const chipsBox = h('fieldset', { class: 'chips' }, h('legend', {}, 'Protect (each adds one sentence to the prompt)'));
  const fields = {
    prompt: field('Prompt', prompt, { name: 'prompt' }),
    mode: field('Mode', mode, { name: 'mode' }),
    quality: field('Quality', quality, { name: 'quality' }),
    size: field('Size', size, { name: 'size' }),
    output_format: field('Format', format, { name: 'output_format' }),
    background: field('Background', background, { name: 'background' }),
    n: field('Images (n)', n, { name: 'n' }),
    partial_images: field('Live previews', partials, { name: 'partial_images', hint: 'Partial images streamed while the provider renders.' }),
    reference: field('References', refsInput, { name: 'reference', hint: 'Optional extra images the edit may draw on.' }),
  };
  const maskWarning = h('p', { class: 'warn-text', role: 'status', 'data-testid': 'mask-warning' });
  const tierWarning = h('p', { class: 'err', 'aria-live': 'polite' });
  const chipsError = h('p', { class: 'err', 'aria-live': 'polite' });

  const chips = await api('/v1/chips').catch(() => ({}));
  for (const [name, sentence] of Object.entries(chips)) {
    const input = h('input', { type: 'checkbox', name: 'protect', value: name });
    input.addEventListener('change', changed);
    chipsBox.append(h('label', { class: 'chip', title: sentence }, input, h('span', { class: 'chip-name' }, name.replace(/_/g, ' ')),
      h('span', { class: 'chip-sentence' }, sentence)));
  }
  chipsBox.append(chipsError);

  const runButton = h('button', { type: 'submit', class: 'primary', 'data-testid': 'run' }, 'Run edit');
  const previewBox = h('div', { class: 'preview', 'aria-live': 'polite', 'data-testid': 'route-preview' },
    h('p', { class: 'hint' }, 'Upload an image and write a prompt: the route appears here before anything is paid.'));
  const progressBox = h('div', { class: 'progress', 'data-testid': 'progress' });
  const resultBox = h('div', { 'data-testid': 'result-box' });

  const form = h('form', { class: 'edit-form', 'aria-label': 'Edit request', novalidate: true },
    fields.prompt, fields.mode, outpaintBox, chipsBox,
    h('div', { class: 'row' }, tier, fields.quality, fields.size), tierWarning,
    h('div', { class: 'row' }, fields.output_format, fields.background, fields.n, fields.partial_images),
    fields.reference, h('div', { class: 'buttons' }, runButton));

  const sourceCard = section(continuing ? `Continue session ${sessionId} from v${version ?? 'latest'}` : 'Source and mask',
    continuing ? null : imageField, maskField, maskWarning);
  clear(main, h('h1', { class: 'sr-only' }, 'Edit an image'), h('div', { class: 'edit-layout' },
    h('div', { class: 'col' }, sourceCard, section('Route preview', previewBox)),
    h('div', { class: 'col' }, section('Request', form))),
  section('Progress', progressBox), section('Result', resultBox));
  resultBox.closest('section').hidden = true;
  progressBox.closest('section').hidden = true;

  // gif and svg come whole (the API streams neither): no live previews to ask for
  format.addEventListener('change', () => {
    const asMade = AS_MADE_FORMATS.includes(format.value);
    if (asMade) partials.value = '0';
    partials.disabled = asMade;
  }); // before the route preview's listener, so the preview asks for what will be sent
  for (const el of [prompt, mode, aspect, anchor, quality, size, format, background, n, refsInput, partials]) {
    el.addEventListener(el.tagName === 'TEXTAREA' || el.type === 'number' ? 'input' : 'change', changed);
  }
  for (const r of tier.querySelectorAll('input')) r.addEventListener('change', changed);

  if (continuing) {
    try {
      const v = await api(`/v1/sessions/${encodeURIComponent(sessionId)}/versions/${encodeURIComponent(version)}`);
      await editor.load(await imageURL(`/v1/sessions/${encodeURIComponent(sessionId)}/versions/${v.number}/image`));
      if (v.prompt) prompt.value = v.prompt;
      state.parent = v;
    } catch (err) {
      maskField.error(errorText(err));
    }
  }

  function values() {
    const v = {
      prompt: prompt.value.trim(),
      mode: mode.value,
      tier: tier.querySelector('input:checked').value,
      quality: quality.value,
      size: size.value,
      output_format: format.value,
      background: background.value,
      n: n.value,
      partial_images: partials.value,
      protect: [...chipsBox.querySelectorAll('input:checked')].map((c) => c.value).join(','),
    };
    if (mode.value === 'outpaint') Object.assign(v, { aspect: aspect.value, anchor: anchor.value });
    if (continuing) Object.assign(v, { session_id: sessionId, parent_version: String(state.parent ? state.parent.number : version) });
    return v;
  }

  async function formData() {
    const fd = new FormData();
    for (const [k, v] of Object.entries(values())) if (v !== '' && v !== undefined) fd.append(k, v);
    if (!continuing && state.file) fd.append('image', state.file, state.file.name || 'image');
    if (mode.value !== 'outpaint') {
      const mask = await editor.blob();
      if (mask) {
        fd.append('mask', mask, 'mask.png');
        fd.append('mask_convention', 'alpha');
      }
    }
    for (const f of refsInput.files) fd.append('reference', f, f.name);
    return fd;
  }

  function showFieldError(err) {
    const p = (err.param || '').split('.')[0];
    if (p === 'protect') chipsError.textContent = errorText(err);
    else if (p === 'tier') tierWarning.textContent = errorText(err);
    else {
      const target = p === 'image' ? imageField : p === 'mask' ? maskField : fields[p];
      if (!target) return false;
      target.error(errorText(err));
    }
    return true;
  }

  function clearErrors() {
    for (const f of [imageField, maskField, ...Object.values(fields)]) f.error('');
    chipsError.textContent = '';
    tierWarning.textContent = '';
  }

  function warnings(decision) {
    const notes = [];
    if (mode.value === 'inpaint' && !(editor.coverageValue > 0)) {
      notes.push('No mask: the provider may change any part of the image. Paint the region to edit to keep the rest.');
    }
    if (decision && background.value === 'transparent') {
      const lost = (decision.dropped || []).filter((d) => (d.reasons || []).some((r) => r.startsWith('transparent')));
      if (lost.length) fields.background.error(`Transparency narrows the route: ${lost.map((d) => d.provider).join(', ')} cannot keep it.`);
    }
    maskWarning.textContent = notes.join(' ');
  }

  async function preview() {
    const ticket = ++state.preview;
    clearErrors();
    warnings(null);
    if (!continuing && !state.file) return;
    if (!prompt.value.trim()) {
      clear(previewBox, h('p', { class: 'hint' }, 'Write a prompt to see the route.'));
      return;
    }
    clear(previewBox, h('p', { class: 'hint' }, 'Asking the policy…'));
    try {
      const r = await api('/v1/route/explain', { method: 'POST', form: await formData() });
      if (ticket !== state.preview) return;
      clear(previewBox, decisionView(r.decision, { features: r.features, breakers: r.breakers }));
      warnings(r.decision);
    } catch (err) {
      if (ticket !== state.preview) return;
      const placed = err instanceof ApiError && showFieldError(err);
      clear(previewBox, placed ? h('p', { class: 'err' }, 'Fix the field marked above to see the route.') : errorBox(err));
    }
  }
  const debounced = debounce(preview, 350);
  function changed() {
    outpaintBox.hidden = mode.value !== 'outpaint';
    editor.showFrame(mode.value === 'outpaint' ? aspect.value : null, anchor.value);
    debounced();
  }

  // --- run, progress, result ------------------------------------------------------------------
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    if (!continuing && !state.file) {
      imageField.error('Choose a source image first.');
      return;
    }
    if (state.controller) state.controller.abort();
    state.controller = new AbortController();
    runButton.disabled = true;
    try {
      const path = continuing ? `/v1/sessions/${encodeURIComponent(sessionId)}/edits` : '/v1/edits';
      const accepted = await api(path, { method: 'POST', form: await formData(), extraHeaders: { Prefer: 'respond-async' } });
      await follow(accepted, state.controller.signal);
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (!(err instanceof ApiError && showFieldError(err))) {
        progressBox.closest('section').hidden = false;
        clear(progressBox, errorBox(err));
      }
    } finally {
      runButton.disabled = false;
    }
  });

  async function follow(accepted, signal) {
    const started = performance.now();
    const phase = h('strong', { 'data-testid': 'phase' }, accepted.status || 'queued');
    const provider = h('span', { 'data-testid': 'provider' }, '—');
    const fallbacks = h('span', {}, '0');
    const elapsed = h('span', {}, '0.0 s');
    const strip = h('div', { class: 'partials', 'data-testid': 'partials' });
    const log = h('ol', { class: 'log', 'aria-label': 'Events' });
    const cancel = h('button', { type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => api(`/v1/edits/${encodeURIComponent(accepted.id)}/cancel`, { method: 'POST' })
      .catch((err) => log.append(h('li', { class: 'err' }, errorText(err)))));
    progressBox.closest('section').hidden = false;
    resultBox.closest('section').hidden = true;
    clear(progressBox, h('dl', { class: 'kv inline' }, h('dt', {}, 'Edit'), h('dd', {}, accepted.id),
      h('dt', {}, 'Phase'), h('dd', {}, phase), h('dt', {}, 'Provider'), h('dd', {}, provider),
      h('dt', {}, 'Fallbacks'), h('dd', {}, fallbacks), h('dt', {}, 'Elapsed'), h('dd', { 'aria-live': 'off' }, elapsed)),
    cancel, strip, h('details', {}, h('summary', {}, 'Events'), log));
    const tick = setInterval(() => { elapsed.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`; }, 100);
    let lastId = 0;
    let nFallbacks = 0;
    let terminal = null;
    try {
      for (let tries = 0; !terminal && tries < 5; tries += 1) {
        try {
          for await (const e of events(`/v1/edits/${encodeURIComponent(accepted.id)}/events`, { signal, lastEventId: lastId })) {
            if (/^\d+$/.test(e.id || '')) lastId = Number(e.id);
            const d = e.data;
            if (e.event === 'queued') {
              phase.textContent = 'queued';
              log.append(h('li', {}, `queued (position ${d.position})`));
            } else if (e.event === 'routed') {
              phase.textContent = 'routed';
              provider.textContent = d.candidates[0] || '—';
              log.append(h('li', {}, `routed by ${d.rule} → ${d.candidates.join(' → ')} (estimate ${usd(d.estimate_usd)})`));
            } else if (e.event === 'attempt') {
              provider.textContent = d.provider;
              if (d.fallback) nFallbacks += 1;
              fallbacks.textContent = String(nFallbacks);
              log.append(h('li', {}, `attempt ${d.provider}: ${d.outcome}${d.error ? ` (${d.error})` : ''} in ${ms(d.latency_ms)}${d.fallback ? ' — fallback' : ''}`));
            } else if (e.event === 'partial_image') {
              phase.textContent = 'rendering';
              if (d.b64_json) {
                const mime = TYPES[d.format] || 'image/png';
                strip.append(h('figure', { class: 'partial', 'data-testid': 'partial' },
                  h('img', { src: `data:${mime};base64,${d.b64_json}`, alt: `Preview ${d.index + 1}` }),
                  h('figcaption', {}, `preview ${d.index + 1} · ${d.width}×${d.height}`)));
              }
              log.append(h('li', {}, `preview ${d.index + 1}${d.superseded ? ' (superseded by the final image)' : ''}`));
            } else if (e.event === 'completed' || e.event === 'failed') {
              terminal = e;
            }
          }
        } catch (err) {
          if (err.name === 'AbortError') throw err;
          log.append(h('li', { class: 'err' }, `stream interrupted: ${errorText(err)}; resuming`));
        }
      }
    } finally {
      clearInterval(tick);
      cancel.disabled = true;
    }
    while (!terminal) {  // the stream kept breaking: long-poll the record until the edit ends
      const record = await api(`/v1/edits/${encodeURIComponent(accepted.id)}?wait=60`, { signal });
      if (record.status === 'succeeded') terminal = { event: 'completed', data: record };
      else if (!['queued', 'running'].includes(record.status)) terminal = { event: 'failed', data: record.error || { message: record.status } };
    }
    phase.textContent = terminal.event === 'completed' ? 'succeeded' : 'failed';
    resultBox.closest('section').hidden = false;
    if (terminal.event === 'completed') {
      clear(resultBox, resultView(terminal.data));
    } else {
      const record = await api(`/v1/edits/${encodeURIComponent(accepted.id)}`).catch(() => ({}));
      clear(resultBox, errorBox(terminal.data), record.session_id
        ? h('p', {}, 'The failed version is kept in its ', h('a', { href: `#/session/${encodeURIComponent(record.session_id)}` }, 'session'), ' where it can be retried.') : null);
    }
    resultBox.closest('section').scrollIntoView({ block: 'start' });
  }

  return () => { if (state.controller) state.controller.abort(); };
}
