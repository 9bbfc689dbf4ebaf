// The console's shell: sign-in (API key in sessionStorage, or development mode), and the page router (#/page/arg).

import { api, auth, ApiError } from './api.js';
import { clear, field, h } from './dom.js';

const PAGES = {
  edit: () => import('./pages/edit.js'),
  session: () => import('./pages/session.js'),
  compare: () => import('./pages/compare.js'),
  experiments: () => import('./pages/experiments.js'),
  routing: () => import('./pages/routing.js'),
  spend: () => import('./pages/spend.js'),
};

const main = document.getElementById('main');
const authBox = document.getElementById('auth');
const banner = document.getElementById('banner');
let cleanup = null;

function showBanner(text, kind = 'info') {
  banner.hidden = !text;
  banner.className = `banner ${kind}`;
  banner.textContent = text || '';
}

/** Who we are: development mode (no keys exist: the API answers without one), or signed in with a key. */
async function probe() {
  try {
    const policy = await api('/v1/policy', { anonymous: true });
    auth.devMode = true;
    auth.admin = 'configured' in policy;
    return 'dev';
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
  }
  auth.devMode = false;
  if (!auth.key) return 'signed-out';
  try {
    await api('/v1/sessions?limit=1');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      auth.clear();
      return 'signed-out';
    }
    throw err;
  }
  try {
    const policy = await api('/v1/policy');
    auth.admin = 'configured' in policy;
  } catch {
    auth.admin = false;
  }
  return 'signed-in';
}

function signInForm(message) {
  const input = h('input', { type: 'password', name: 'api_key', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'eg_…', required: true });
  const f = field('API key', input, { name: 'api_key',
    hint: 'Kept in this tab only (sessionStorage) and sent as "Authorization: Bearer"; no cookies.' });
  if (message) f.error(message);
  const form = h('form', { class: 'card signin', 'aria-label': 'Sign in' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'This editgate has API keys: sign in with one to use the console.'),
    f, h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    auth.set(input.value.trim());
    const state = await probe();
    if (state === 'signed-in') {
      renderAuth(state);
      start();
    } else f.error('The API key is not valid or has been revoked.');
  });
  clear(main, form);
  input.focus();
}

function renderAuth(state) {
  document.querySelector('.top nav').hidden = state === 'signed-out';
  if (state === 'dev') {
    clear(authBox, h('span', { class: 'pill warn' }, 'development mode'));
    showBanner('Development mode: no API keys exist on this editgate, so the console opens without signing in '
      + '(you act as the development tenant, with the admin scope). The first `editgate keys create` turns sign-in on.',
      'warn');
  } else if (state === 'signed-in') {
    const out = h('button', { type: 'button', class: 'link' }, 'Sign out');
    out.addEventListener('click', () => {
      auth.clear();
      window.removeEventListener('hashchange', route);
      if (cleanup) cleanup();
      cleanup = null;
      boot();
    });
    clear(authBox, h('span', { class: 'pill' }, auth.admin ? 'signed in (admin)' : 'signed in'), ' ', out);
    showBanner('');
  } else {
    clear(authBox);
    showBanner('');
  }
}

async function route() {
  const [, name = 'edit', ...args] = (window.location.hash || '#/edit').slice(1).split('/');
  const page = PAGES[name] ? name : 'edit';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (cleanup) cleanup();
  cleanup = null;
  clear(main);
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · editgate console`;
  try {
    const mod = await PAGES[page]();
    cleanup = (await mod.render(main, args.map(decodeURIComponent))) || null;
  } catch (err) {
    clear(main, h('div', { class: 'card' }, h('h1', {}, 'This page could not load'),
      h('p', { class: 'err' }, String(err.message || err))));
  }
}

function start() {
  window.removeEventListener('hashchange', route);
  window.addEventListener('hashchange', route);
  route();
}

async function boot() {
  let state;
  try {
    state = await probe();
  } catch (err) {
    clear(main, h('div', { class: 'card' }, h('h1', {}, 'editgate is not answering'), h('p', {}, String(err.message))));
    return;
  }
  renderAuth(state);
  if (state === 'signed-out') signInForm();
  else start();
}

boot();
