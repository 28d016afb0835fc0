// app.js — the page's entry point: the router that draws one page per
// path, the navigation, and the notice that says when the daemon's event
// stream is down.
//
// Paths (all served as index.html by package ui):
//   /                          dashboard
//   /create                    create a VM
//   /vm/NAME                   a VM
//   /vm/NAME/session/ID        a session's terminal
//   /vm/NAME/diff              what changed in a VM's workspace
//   /images                    images
//   /images/bootstrap|build|register   image forms
//   /images/NAME               an image
//   /operations[?id=ID]        operations (one followed live)

import { h, replace, text } from './dom.js';
import { Live } from './live.js';
import * as dashboard from './pages/dashboard.js';
import * as create from './pages/create.js';
import * as vmPage from './pages/vm.js';
import * as sessionPage from './pages/session.js';
import * as diffPage from './pages/diff.js';
import * as images from './pages/images.js';
import * as imageForms from './pages/imageforms.js';
import * as operations from './pages/operations.js';

// ROUTES: a path pattern, the page, and the nav link it belongs to.
const ROUTES = [
  [/^\/$/, dashboard, 'nav-dashboard'],
  [/^\/create$/, create, 'nav-create'],
  [/^\/vm\/([^/]+)$/, vmPage, 'nav-dashboard'],
  [/^\/vm\/([^/]+)\/session\/([^/]+)$/, sessionPage, 'nav-dashboard'],
  [/^\/vm\/([^/]+)\/diff$/, diffPage, 'nav-dashboard'],
  [/^\/images$/, images, 'nav-images'],
  [/^\/images\/(bootstrap|build|register)$/, imageForms, 'nav-images'],
  [/^\/images\/([^/]+)$/, images, 'nav-images'],
  [/^\/operations$/, operations, 'nav-operations'],
];

const live = new Live();
let unmount = null;

// navigate goes to path (same origin) without reloading.
export function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function render() {
  const root = document.getElementById('app');
  if (unmount) {
    try {
      unmount();
    } catch (err) {
      console.error('unmount', err);
    }
    unmount = null;
  }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  for (const [re, page, nav] of ROUTES) {
    const m = re.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll('header nav a')) {
      if (a.id === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const params = m.slice(1).map(decodeURIComponent);
    replace(root);
    root.dataset.page = page.name;
    unmount = page.mount(root, { live, params, query: new URLSearchParams(location.search), navigate }) || null;
    return;
  }
  root.dataset.page = 'notfound';
  replace(root, h('h1', {}, 'No such page'), h('p', {}, 'The web UI has no page at ', h('code', {}, path), '. ', h('a', { href: '/' }, 'Go to the dashboard'), '.'));
}

// Links to app paths are followed without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || u.pathname.startsWith('/v1/') || u.pathname.startsWith('/static/') || u.pathname === '/logout' || u.pathname === '/login') return;
  e.preventDefault();
  navigate(u.pathname + u.search);
});
addEventListener('popstate', render);

// The connection notice: hidden while the feed is live; says why and when
// it retries while it is not.
const notice = document.getElementById('conn-status');
let wasDown = false;
function drawNotice() {
  const st = live.state;
  // <html data-live="connecting|up|down">: the feed's state, for tests.
  document.documentElement.dataset.live = st.connected ? 'up' : live.loaded || st.retryAt ? 'down' : 'connecting';
  if (st.connected) {
    if (wasDown) {
      notice.hidden = false;
      notice.dataset.state = 'up';
      text(notice, 'Reconnected to bangerd.');
      setTimeout(() => {
        if (live.state.connected) notice.hidden = true;
      }, 3000);
      wasDown = false;
    } else {
      notice.hidden = true;
    }
    return;
  }
  if (!live.loaded && !st.retryAt) {
    notice.hidden = false;
    notice.dataset.state = 'connecting';
    text(notice, 'Connecting to bangerd…');
    return;
  }
  wasDown = true;
  notice.hidden = false;
  notice.dataset.state = 'down';
  const secs = Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000));
  text(notice, `⚠ Lost the live connection to bangerd: ${st.message}. ${secs > 0 ? `Reconnecting in ${secs}s…` : 'Reconnecting…'} What you see may be out of date.`);
}
live.subscribe((kind) => {
  if (kind === 'connection') drawNotice();
});
setInterval(() => {
  if (!live.state.connected && live.state.retryAt) drawNotice();
}, 1000);

// Leaving the page ends its streams (the feed, a console, a terminal)
// at once: a page kept in the back/forward cache would otherwise hold
// its connections, and a browser allows only a few per host.
addEventListener('pagehide', () => {
  live.stop();
  if (unmount) {
    unmount();
    unmount = null;
  }
});
addEventListener('pageshow', (e) => {
  if (e.persisted) {
    live.start();
    render();
  }
});

drawNotice();
live.start();
render();
