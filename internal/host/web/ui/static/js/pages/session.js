// session.js — a session's terminal: xterm.js attached over the WebSocket
// GET /v1/vms/{name}/sessions/{id}/terminal.
//
// Protocol (package web): binary messages are output bytes in order; text
// messages are JSON control. The page sends {"type":"input","data":…},
// {"type":"resize","rows":R,"cols":C} (TTY sessions only) and
// {"type":"detach"}; it receives {"type":"session","session":{…}} first,
// then {"type":"gap","offset":O,"dropped":D},
// {"type":"exit","session":{…}} and {"type":"error","error":{…}}.
// Connecting without ?since replays everything still buffered, so a new
// tab (or a reconnect, which first clears the terminal) shows the whole
// retained output. Several tabs may view one session at once.
//
// Test hooks: #terminal (the xterm container), #terminal-status
// (data-state="connecting|attached|detached|exited|error"),
// #session-detach, #session-attach, #session-stop, #session-kill,
// #session-info.

import { Terminal } from '/static/vendor/xterm/xterm.mjs';
import { FitAddon } from '/static/vendor/xterm/addon-fit.mjs';
import { ApiError, enc, get, post, wsURL } from '../api.js';
import { h, inert, replace, stateBadge, text } from '../dom.js';
import { age } from '../format.js';
import { busy, confirmDialog } from '../forms.js';
import { sessionStatus, stopSession } from './sessions.js';

export const name = 'session';

export function mount(root, { live, params }) {
  const [vm, id] = params;
  const ctl = new AbortController();
  const signal = ctl.signal;
  const status = h('p', { id: 'terminal-status', role: 'status', 'data-state': 'connecting' }, 'connecting…');
  const info = h('p', { id: 'session-info' });
  const container = h('div', { id: 'terminal', class: 'terminal', 'aria-describedby': 'terminal-help' });
  const detachBtn = h('button', { type: 'button', id: 'session-detach' }, 'Detach');
  const attachBtn = h('button', { type: 'button', id: 'session-attach', hidden: true }, 'Attach again');
  const stopBtn = h('button', { type: 'button', id: 'session-stop' }, 'Stop');
  const killBtn = h('button', { type: 'button', id: 'session-kill', class: 'danger' }, 'Kill');
  root.append(
    h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: `/vm/${enc(vm)}` }, `VM ${vm}`), ' / session'),
    h('h1', {}, 'Session ', h('span', { id: 'session-title' }, id)),
    info,
    h('div', { class: 'actions' }, detachBtn, attachBtn, stopBtn, killBtn),
    status, container,
    h('p', { class: 'muted', id: 'terminal-help' }, 'Keys typed in the terminal go to the session (Tab included); F6 leaves the terminal. Detach leaves the session running; other viewers stay attached.'));

  let session = null;
  function drawInfo() {
    if (!session) return;
    replace(info, stateBadge(session.state, sessionStatus(session)), ' ',
      h('code', {}, inert((session.argv || []).join(' '))), ` — ${session.tty ? 'TTY' : 'pipes'}, started ${age(session.started_at)} ago, ${session.attach_count ?? 0} viewer(s)`);
    text(document.querySelector('#session-title'), session.name ? `${inert(session.name)} (${id})` : id);
    const running = session.state === 'running';
    stopBtn.disabled = !running;
    killBtn.disabled = !running;
  }

  const term = new Terminal({
    cursorBlink: true,
    scrollback: 5000,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    allowProposedApi: false,
    screenReaderMode: false,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  let ws = null;
  let detached = false;

  const setStatus = (state, msg) => {
    status.dataset.state = state;
    text(status, msg);
  };
  const send = (obj) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  };
  const sendSize = () => {
    if (session?.tty) send({ type: 'resize', rows: term.rows, cols: term.cols });
  };

  function connect() {
    detached = false;
    // A pipe session writes bare newlines; a TTY's line discipline
    // already sends CR LF.
    term.options.convertEol = !!session && !session.tty;
    term.reset();
    setStatus('connecting', 'attaching…');
    const sock = new WebSocket(wsURL(`/v1/vms/${enc(vm)}/sessions/${enc(id)}/terminal`));
    ws = sock;
    sock.binaryType = 'arraybuffer';
    sock.onopen = () => {
      setStatus('attached', session?.state === 'running' || !session ? 'attached: output is live' : 'replaying the buffered output');
      fitNow();
      sendSize();
      term.focus();
    };
    sock.onmessage = (m) => {
      if (typeof m.data !== 'string') {
        term.write(new Uint8Array(m.data));
        return;
      }
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === 'session') {
        // The session as this attach began (first message).
        session = msg.session || session;
        drawInfo();
      } else if (msg.type === 'gap') {
        term.write(`\r\n\x1b[2m[… ${msg.dropped} bytes of output at offset ${msg.offset} are no longer buffered …]\x1b[0m\r\n`);
      } else if (msg.type === 'exit') {
        session = msg.session || session;
        drawInfo();
        setStatus('exited', `the session ended: ${session ? sessionStatus(session) : 'exited'}`);
      } else if (msg.type === 'error') {
        setStatus('error', `error: ${inert(msg.error?.message || 'unknown')}`);
      }
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      detachBtn.hidden = true;
      attachBtn.hidden = false;
      if (detached || signal.aborted) {
        setStatus('detached', 'detached: the session goes on running');
      } else if (status.dataset.state !== 'exited' && status.dataset.state !== 'error') {
        setStatus('error', `the terminal connection closed${e.reason ? ` (${inert(e.reason)})` : ''}; Attach again to reconnect`);
      }
    };
    detachBtn.hidden = false;
    attachBtn.hidden = true;
  }

  // Tab and every other key go to the session; F6 leaves the terminal
  // (to the Detach button), so the keyboard is never trapped in it.
  term.attachCustomKeyEventHandler((e) => {
    if (e.type === 'keydown' && e.key === 'F6') {
      (detachBtn.hidden ? attachBtn : detachBtn).focus();
      e.preventDefault();
      return false;
    }
    return true;
  });
  term.onData((data) => send({ type: 'input', data }));
  term.onResize(() => sendSize());
  function fitNow() {
    try {
      fit.fit();
    } catch {
      // not laid out yet
    }
  }
  const ro = new ResizeObserver(() => fitNow());
  ro.observe(container);

  detachBtn.addEventListener('click', () => {
    detached = true;
    send({ type: 'detach' });
    ws?.close(1000, 'detach');
  });
  attachBtn.addEventListener('click', () => connect());
  stopBtn.addEventListener('click', () => busy(stopBtn, async () => {
    session = await stopSession(vm, id, (m) => setStatus(status.dataset.state, m), signal);
    drawInfo();
  }));
  killBtn.addEventListener('click', () => busy(killBtn, async () => {
    if (!(await confirmDialog(`Send SIGKILL to session ${session?.name || id}?`, 'Kill'))) return;
    session = await post(`/v1/vms/${enc(vm)}/sessions/${enc(id)}/signal`, { signal: 'KILL' });
    drawInfo();
  }));

  const unsub = live.subscribe((kind, key, ev) => {
    if (kind === 'session' && key === vm && ev && ev.id === id && ev.session_state) {
      session = ev.session_state;
      drawInfo();
    }
  });

  (async () => {
    try {
      session = await get(`/v1/vms/${enc(vm)}/sessions/${enc(id)}`, { signal });
      drawInfo();
      connect();
    } catch (err) {
      if (signal.aborted) return;
      setStatus('error', err instanceof ApiError && err.code === 'not_found' ? `no session ${id} on VM ${vm}` : `error: ${err.message}`);
    }
  })();

  return () => {
    unsub();
    ctl.abort();
    ro.disconnect();
    detached = true;
    if (ws) {
      send({ type: 'detach' });
      ws.close(1000, 'page left');
    }
    term.dispose();
  };
}
