// admin.js — the admin page's entry point: hash routing between the views
// (#/ transactions, #/trans/GID one transaction, #/topics), the banner that
// shows errors and notices, and the Refresh button. A view loads its data
// first and only then replaces what is shown, so when dtmq cannot be reached
// the last good content stays on screen under the error banner.

import {get} from './api.js';
import {replaceChildren} from './dom.js';
import {listView} from './list.js';
import {topicsView} from './topics.js';
import {transView} from './trans.js';

const main = document.getElementById('view');
const banner = document.getElementById('banner');
const bannerText = document.getElementById('banner-text');
const updated = document.getElementById('updated');
let renderSeq = 0;

function showBanner(kind, message) {
  banner.className = `banner ${kind}`;
  banner.dataset.kind = kind;
  bannerText.textContent = message;
  banner.hidden = false;
}

function hideBanner() {
  banner.hidden = true;
  bannerText.textContent = '';
}

// "#/trans/abc?x=1" → {path: "/trans/abc", params: URLSearchParams("x=1")}
function parseHash() {
  const hash = window.location.hash.replace(/^#/, '') || '/';
  const q = hash.indexOf('?');
  return {
    path: q < 0 ? hash : hash.slice(0, q),
    params: new URLSearchParams(q < 0 ? '' : hash.slice(q + 1)),
  };
}

// The view for a path and the navigation entry it belongs to.
function route(path) {
  const trans = /^\/trans\/(.+)$/.exec(path);
  if (trans) return {view: transView, arg: decodeURIComponent(trans[1]), nav: 'list'};
  if (path === '/topics') return {view: topicsView, arg: null, nav: 'topics'};
  return {view: listView, arg: null, nav: 'list'};
}

function markNav(nav) {
  for (const a of document.querySelectorAll('nav a[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === nav);
  }
}

const app = {
  // Draws the current view again from fresh data. Resolves once drawn (or failed).
  async refresh({keepBanner = false} = {}) {
    const seq = ++renderSeq;
    const {path, params} = parseHash();
    const {view, arg, nav} = route(path);
    markNav(nav);
    document.body.classList.add('loading');
    try {
      const node = await view(app, params, arg);
      if (seq !== renderSeq) return; // a newer navigation won
      replaceChildren(main, node);
      if (!keepBanner) hideBanner();
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (seq === renderSeq) app.error(e.message || String(e));
    } finally {
      if (seq === renderSeq) document.body.classList.remove('loading');
    }
  },
  go(hash) {
    if (window.location.hash === hash) app.refresh();
    else window.location.hash = hash;
  },
  error(message) {
    showBanner('error', message);
  },
  notice(message) {
    showBanner('notice', message);
  },
  // Asks, runs action (a promise-returning function), shows what came of it
  // and refreshes the view. Returns without doing anything when not confirmed.
  async confirmAndRun(question, action, doneMessage) {
    if (!window.confirm(question)) return;
    try {
      await action();
      app.notice(doneMessage);
      await app.refresh({keepBanner: true});
    } catch (e) {
      app.error(e.message || String(e));
    }
  },
};

// The version and store in the header; not being able to read them is no error.
async function showServerInfo() {
  try {
    const info = await get('/api/info');
    const store = info.store && info.store.driver ? ` · ${info.store.driver}` : '';
    document.getElementById('server').textContent = `dtmq ${info.version || ''}${store}`;
  } catch {
    // the next view load reports dtmq being unreachable
  }
}

document.getElementById('refresh').addEventListener('click', () => app.refresh());
document.getElementById('banner-close').addEventListener('click', hideBanner);
window.addEventListener('hashchange', () => app.refresh());
showServerInfo();
app.refresh();
