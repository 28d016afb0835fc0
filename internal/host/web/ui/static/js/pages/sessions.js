// sessions.js — a VM's sessions on the VM page: the list (live through
// session events), the start form, and stop, kill, remove.
//
// Stop mirrors the shared front-end layer's policy
// (internal/host/frontend/stop.go, as `banger vm session stop` uses it):
// SIGTERM, then the session's state every 200ms for up to 10s, then
// SIGKILL and up to 5s more.
//
// Test hooks: #sessions, #session-table (tr[data-session="ID"],
// buttons [data-action="open|stop|kill|rm"]), #session-form with inputs
// [name="name|cwd|env|tty|argv"], #session-submit, #session-started.

import { del, enc, get, post, sleep } from '../api.js';
import { h, inert, keepFocus, labelCells, replace, stateBadge, text } from '../dom.js';
import { age, splitWords, stateLabel } from '../format.js';
import { busy, clearErrors, confirmDialog, field, fieldError, flash, formError, showError } from '../forms.js';

const STOP_TIMEOUT = 10000;
const KILL_WAIT = 5000;
const POLL = 200;

// sessionStatus says how a session stands, in words.
export function sessionStatus(s) {
  let t = stateLabel(s.state);
  if (s.exit_code != null) t += ` (exit ${s.exit_code})`;
  if (s.signal) t += ` (${s.signal})`;
  if (s.orphaned) t += ' (orphaned)';
  if (s.forked_from) t += ` (forked from ${s.forked_from})`;
  return t;
}

// stopSession sends TERM, waits, then KILL; note(msg) reports progress.
export async function stopSession(vm, id, note, signal) {
  const path = `/v1/vms/${enc(vm)}/sessions/${enc(id)}`;
  let s = await post(`${path}/signal`, { signal: 'TERM' }, { signal });
  note('SIGTERM sent; waiting up to 10s');
  const wait = async (ms) => {
    const end = Date.now() + ms;
    while (s.state === 'running' && Date.now() < end && !signal?.aborted) {
      await sleep(POLL, signal);
      s = await get(path, { signal });
    }
  };
  await wait(STOP_TIMEOUT);
  if (s.state !== 'running') return s;
  note('still running after 10s: SIGKILL sent');
  s = await post(`${path}/signal`, { signal: 'KILL' }, { signal });
  await wait(KILL_WAIT);
  return s;
}

// sessionsPanel returns {el, close} for VM vm.
export function sessionsPanel(vm, live, signal) {
  const sessions = new Map();
  const notes = new Map(); // id → what a stop is doing
  const body = h('tbody', {});
  const status = h('p', { id: 'sessions-status', class: 'muted', role: 'status' });
  const f = {
    name: h('input', { name: 'name', type: 'text', autocomplete: 'off', spellcheck: 'false' }),
    cwd: h('input', { name: 'cwd', type: 'text', placeholder: '/root/repo if it exists, else /root', spellcheck: 'false' }),
    env: h('textarea', { name: 'env', rows: 2, placeholder: 'KEY=value, one per line', spellcheck: 'false' }),
    tty: h('input', { name: 'tty', type: 'checkbox', checked: true }),
    argv: h('input', { name: 'argv', type: 'text', required: true, placeholder: 'e.g. bash, or opencode', spellcheck: 'false' }),
  };
  const submit = h('button', { type: 'submit', id: 'session-submit', class: 'primary' }, 'Start session');
  const started = h('div', { id: 'session-started', role: 'status' });
  const form = h('form', { id: 'session-form', novalidate: true, 'aria-labelledby': 'session-form-h' },
    h('h3', { id: 'session-form-h' }, 'Start a session'),
    field('Command', f.argv, { hint: 'split into words as a shell would (quotes work; no $ expansion, no pipes: use sh -c "…")' }),
    field('Name', f.name, { hint: 'optional' }),
    field('Working directory', f.cwd),
    field('Environment', f.env),
    field('Terminal (TTY)', f.tty, { hint: 'a TTY session gets a terminal and can be resized; without, stdout and stderr are pipes' }),
    formError('session-form-error'),
    h('div', { class: 'actions' }, submit), started);
  const el = h('section', { id: 'sessions', 'aria-labelledby': 'sessions-h' },
    h('h2', { id: 'sessions-h' }, 'Sessions'), status,
    h('div', { class: 'table-wrap' }, h('table', { id: 'session-table', class: 'grid' },
      h('thead', {}, h('tr', {}, ['id', 'name', 'command', 'state', 'mode', 'started', 'viewers', 'actions'].map((c) => h('th', { scope: 'col' }, c)))),
      body)),
    form);

  function draw() {
    const list = [...sessions.values()].sort((a, b) => (a.started_at < b.started_at ? -1 : 1));
    keepFocus(() => replace(body, list.length === 0 ? h('tr', {}, h('td', { colspan: 8, class: 'muted', id: 'no-sessions' }, 'No sessions.'))
      : list.map((s) => {
        const running = s.state === 'running';
        const btn = (action, label, fn, opts = {}) => {
          const b = h('button', { type: 'button', id: `session-${s.id}-${action}`, 'data-action': action, class: opts.danger ? 'danger' : '', 'aria-label': `${label} session ${s.name || s.id}`, disabled: !!opts.disabled }, label);
          b.addEventListener('click', () => busy(b, fn));
          return b;
        };
        return h('tr', { 'data-session': s.id, 'data-state': s.state },
          h('td', {}, h('code', {}, s.id)),
          h('td', {}, inert(s.name || '-')),
          h('td', {}, h('code', {}, inert((s.argv || []).join(' ')))),
          h('td', {}, stateBadge(s.state, sessionStatus(s)), notes.get(s.id) ? h('div', { class: 'muted' }, notes.get(s.id)) : null,
            (s.diagnostics || []).map((d) => h('div', { class: 'warn' }, inert(d)))),
          h('td', {}, s.tty ? 'tty' : 'pipes'),
          h('td', {}, age(s.started_at)),
          h('td', { class: 'num' }, s.attach_count ?? 0),
          h('td', {}, h('span', { class: 'actions' },
            h('a', { class: 'button', href: `/vm/${enc(vm)}/session/${enc(s.id)}`, id: `session-${s.id}-open`, 'data-action': 'open' }, running ? 'Terminal' : 'Output'),
            btn('stop', 'Stop', async () => {
              notes.set(s.id, 'stopping…');
              draw();
              try {
                const end = await stopSession(vm, s.id, (m) => {
                  notes.set(s.id, m);
                  draw();
                }, signal);
                sessions.set(end.id, end);
              } finally {
                notes.delete(s.id);
                draw();
              }
            }, { disabled: !running }),
            btn('kill', 'Kill', async () => {
              if (!(await confirmDialog(`Send SIGKILL to session ${s.name || s.id}?`, 'Kill'))) return;
              sessions.set(s.id, await post(`/v1/vms/${enc(vm)}/sessions/${enc(s.id)}/signal`, { signal: 'KILL' }));
              draw();
            }, { danger: true, disabled: !running }),
            btn('rm', 'Remove', async () => {
              await del(`/v1/vms/${enc(vm)}/sessions/${enc(s.id)}`);
              sessions.delete(s.id);
              draw();
            }, { disabled: running }))));
      })));
    labelCells(body);
  }

  async function load() {
    try {
      const list = await get(`/v1/vms/${enc(vm)}/sessions`, { signal });
      sessions.clear();
      for (const s of list.sessions || []) sessions.set(s.id, s);
      text(status, '');
    } catch (err) {
      if (signal.aborted) return;
      text(status, `sessions: ${err.message}`);
    }
    draw();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    replace(started);
    const req = {};
    try {
      req.argv = splitWords(f.argv.value);
      if (!req.argv.length) throw new Error('argv is empty: give the command to run');
    } catch (err) {
      showError(form, fieldError('argv', err.message));
      return;
    }
    if (f.name.value.trim()) req.name = f.name.value.trim();
    if (f.cwd.value.trim()) req.cwd = f.cwd.value.trim();
    const env = f.env.value.split('\n').map((l) => l.trim()).filter(Boolean);
    const bad = env.find((l) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(l));
    if (bad) {
      showError(form, fieldError('env', `env "${bad}" is not KEY=value`));
      return;
    }
    if (env.length) req.env = env;
    req.tty = f.tty.checked;
    if (req.tty) {
      req.rows = 24;
      req.cols = 80;
    }
    submit.disabled = true;
    try {
      const s = await post(`/v1/vms/${enc(vm)}/sessions`, req, { signal });
      sessions.set(s.id, s);
      draw();
      replace(started, h('p', {}, `Started session ${s.name || s.id}. `,
        h('a', { href: `/vm/${enc(vm)}/session/${enc(s.id)}`, id: 'session-started-open' }, 'Open its terminal')));
      flash(`started session ${s.name || s.id}`);
    } catch (err) {
      if (err.name !== 'AbortError') showError(form, err);
    } finally {
      submit.disabled = false;
    }
  });

  const unsub = live.subscribe((kind, key, ev) => {
    if (kind === 'session' && key === vm && ev) {
      if (ev.removed) sessions.delete(ev.id);
      else if (ev.session_state) sessions.set(ev.session_state.id, ev.session_state);
      draw();
    }
    if (kind === 'all') load();
  });
  load();
  return { el, close: unsub };
}
