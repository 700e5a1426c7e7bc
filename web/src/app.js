// The console: a hash router over four views, one poll loop (paused while the tab is hidden),
// the unreachable banner, the language switch and the token prompt.

import { setTokenPrompt, onTokenState, tokenState, useToken, getToken, Unreachable, ApiError } from './api.js';
import { t, getLang, setLang, applyStatic } from './i18n.js';
import { fmtTime } from './dom.js';
import { hooks, toast } from './ui.js';
import { clusterView } from './cluster.js';
import { queuesView, sampleThroughput } from './queues.js';
import { tasksView, taskView } from './tasks.js';
import { graphView } from './graph.js';

const POLL_MS = 3000;

const views = { cluster: clusterView, queues: queuesView, tasks: tasksView, task: taskView, graph: graphView };
const state = { route: null, params: {}, timer: null, unreachableSince: null, lastOk: null, inflight: false, again: false };

const $ = (sel) => document.querySelector(sel);

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const head = parts[0] || 'cluster';
  const rest = parts.slice(1).join('/');
  if (head === 'tasks' && rest) return { name: 'task', params: { id: decodeURIComponent(rest) } };
  if (head === 'graph') return { name: 'graph', params: { key: rest ? decodeURIComponent(rest) : '' } };
  if (views[head]) return { name: head, params: {} };
  return { name: 'cluster', params: {} };
}

function sectionOf(name) {
  return document.querySelector(`section[data-view="${name}"]`);
}

async function route() {
  const { name, params } = parseRoute();
  const changed = name !== state.route;
  if (changed && state.route && views[state.route].leave) views[state.route].leave();
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.dataset.view !== name;
  const navName = name === 'task' ? 'tasks' : name;
  for (const a of document.querySelectorAll('.top nav a')) {
    if (a.getAttribute('href') === '#/' + navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  state.route = name;
  state.params = params;
  const section = sectionOf(name);
  section.dataset.ready = 'false';
  document.title = t('nav.' + navName) + ' · ' + t('app.title');
  if (views[name].enter) views[name].enter(section, params);
  await tick();
}

function markReachable() {
  state.unreachableSince = null;
  state.lastOk = Date.now();
  $('[data-testid="unreachable-banner"]').hidden = true;
  $('main').classList.remove('stale');
  updateLive();
}

function markUnreachable() {
  if (!state.unreachableSince) state.unreachableSince = Date.now();
  const b = $('[data-testid="unreachable-banner"]');
  b.dataset.since = String(state.unreachableSince);
  b.textContent = t('banner.unreachable', { time: fmtTime(state.unreachableSince) });
  b.hidden = false;
  $('main').classList.add('stale');
  updateLive();
}

function updateLive() {
  const el = $('[data-testid="live-status"]');
  let s = 'live';
  if (document.hidden) s = 'paused';
  else if (tokenState().declined) s = 'token';
  else if (state.unreachableSince) s = 'unreachable';
  else if (!state.lastOk) s = 'starting';
  el.dataset.state = s;
  el.textContent = s === 'live' ? t('live.live', { time: fmtTime(state.lastOk) }) : t('live.' + s);
}

// One round: the throughput sample (kept whatever the view) and the current view's data.
async function tick() {
  if (state.inflight) {
    state.again = true;
    return;
  }
  // No token given: nothing to ask the node until the user opens the token dialog again.
  if (tokenState().declined) {
    clearTimeout(state.timer);
    updateLive();
    return;
  }
  state.inflight = true;
  clearTimeout(state.timer);
  const name = state.route;
  const section = sectionOf(name);
  try {
    const metrics = await sampleThroughput();
    await views[name].refresh(section, state.params, metrics);
    section.dataset.ready = 'true';
    markReachable();
  } catch (err) {
    if (err instanceof Unreachable) markUnreachable();
    else if (err instanceof ApiError) {
      // The node answered: it is reachable, the view shows what went wrong.
      markReachable();
      if (views[name].failed) views[name].failed(section, err);
      else toast(t('common.error', { message: err.message }), 'error');
      section.dataset.ready = 'true';
    } else {
      console.error(err);
    }
  } finally {
    state.inflight = false;
    if (state.again) {
      state.again = false;
      tick();
    } else {
      schedule();
    }
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (document.hidden) return;
  state.timer = setTimeout(tick, POLL_MS);
}


function applyLang() {
  document.documentElement.lang = getLang() === 'zh' ? 'zh-CN' : 'en';
  const sw = $('[data-testid="lang-switch"]');
  sw.dataset.lang = getLang();
  applyStatic(document);
  if (state.unreachableSince) markUnreachable();
  updateLive();
  for (const v of Object.values(views)) if (v.relabel) v.relabel();
}

// Opens the token dialog; resolves {action: 'ok' | 'cancel' | 'forget', token}.
function tokenDialog() {
  const dlg = $('[data-testid="token-dialog"]');
  const input = $('[data-testid="token-input"]');
  input.value = '';
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener(
      'close',
      () => {
        const token = input.value.trim();
        const action = dlg.returnValue === 'ok' && token ? 'ok' : dlg.returnValue === 'forget' ? 'forget' : 'cancel';
        resolve({ action, token });
      },
      { once: true },
    );
    dlg.showModal();
    input.focus();
  });
}

// Asked by api.js on a 401: the token, or null (cancelled or forgotten: stop asking).
async function tokenPrompt() {
  const r = await tokenDialog();
  return r.action === 'ok' ? r.token : null;
}

// The header's token button: change the token, forget it, or (cancel) keep what there is.
async function tokenButton() {
  const dlg = $('[data-testid="token-dialog"]');
  if (dlg.open) return;
  const r = await tokenDialog();
  if (r.action === 'ok') useToken(r.token);
  else if (r.action === 'forget') useToken('');
  else useToken(getToken());
  tick();
}

function showTokenState(st) {
  $('[data-testid="token-button"]').hidden = !st.required;
  $('[data-testid="token-button"]').dataset.stored = String(st.stored);
  updateLive();
}

function start() {
  setTokenPrompt(tokenPrompt);
  onTokenState(showTokenState);
  $('[data-testid="token-button"]').addEventListener('click', tokenButton);
  hooks.refresh = tick;
  hooks.unreachable = markUnreachable;
  $('[data-testid="lang-switch"]').addEventListener('click', () => {
    setLang(getLang() === 'zh' ? 'en' : 'zh');
    applyLang();
  });
  document.addEventListener('visibilitychange', () => {
    updateLive();
    if (document.hidden) clearTimeout(state.timer);
    else tick();
  });
  window.addEventListener('hashchange', route);
  for (const v of Object.values(views)) if (v.init) v.init();
  applyLang();
  route();
}

start();
