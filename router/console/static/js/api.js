// The console is a client of the public API: fetch() with the bearer key from sessionStorage, no cookies.

const KEY = 'editgate.apiKey';

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY) || '';
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
  devMode: false,
  admin: false,
};

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || (typeof body === 'string' && body) || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || `http_${status}`;
    this.param = e.param || null;
  }
}

function headers(extra = {}) {
  const out = { ...extra };
  if (auth.key) out.Authorization = `Bearer ${auth.key}`;
  return out;
}

/** Call the API; JSON in and out. Errors are ApiError with the API's code, message and param. */
export async function api(path, { method = 'GET', json, form, extraHeaders, signal, anonymous } = {}) {
  const hdrs = anonymous ? { ...(extraHeaders || {}) } : headers(extraHeaders);
  let body;
  if (json !== undefined) {
    body = JSON.stringify(json);
    hdrs['Content-Type'] = 'application/json';
  } else if (form) {
    body = form;
  }
  const r = await fetch(path, { method, headers: hdrs, body, signal, credentials: 'omit' });
  if (r.status === 204) return null;
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.text();
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** The API's absolute URLs use its public base; the console always asks its own origin. */
export function localPath(url) {
  const u = new URL(url, window.location.href);
  return u.pathname + u.search;
}

const images = new Map();

/** An image's bytes from the API, with the bearer key. */
export async function imageBlob(url) {
  const r = await fetch(localPath(url), { headers: headers(), credentials: 'omit' });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  return r.blob();
}

/** An image the API serves behind the bearer key, as an object URL (img-src blob:). */
export async function imageURL(url) {
  const path = localPath(url);
  if (!images.has(path)) {
    images.set(path, imageBlob(path).then((blob) => URL.createObjectURL(blob)));
  }
  try {
    return await images.get(path);
  } catch (err) {
    images.delete(path);
    throw err;
  }
}

/** Server-sent events over fetch() (EventSource cannot send the bearer header): yields {id, event, data}. */
export async function* events(path, { signal, lastEventId } = {}) {
  const extra = { Accept: 'text/event-stream' };
  if (lastEventId) extra['Last-Event-ID'] = String(lastEventId);
  const r = await fetch(path, { headers: headers(extra), signal, credentials: 'omit' });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const msg = { id: null, event: 'message', data: '' };
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (name === 'id') msg.id = val;
        else if (name === 'event') msg.event = val;
        else if (name === 'data') data.push(val);
      }
      if (!data.length) continue;
      msg.data = JSON.parse(data.join('\n'));
      yield msg;
    }
  }
}

/** Save an API image under a file name; with `convertTo` ('png' | 'jpeg' | 'webp') re-encoded in the browser. */
export async function download(url, filename, convertTo) {
  let href = await imageURL(url);
  if (convertTo) {
    const bitmap = await createImageBitmap(await imageBlob(url));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
    href = URL.createObjectURL(await canvas.convertToBlob({ type: `image/${convertTo}`, quality: 0.92 }));
  }
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
}
